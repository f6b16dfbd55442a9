import { run, shellQuote, CommandError } from './exec.js';

/** A command run in the namespace right after a batch, in the same spawn (see IpRoute.apply). */
export type FollowUp = readonly [cmd: string, ...args: string[]];

/** TX checksum offload off: required for veths on a userspace (netdev) OVS datapath. */
export function txOffloadOffCommand(dev: string): FollowUp {
  return ['ethtool', '-K', dev, 'tx', 'off'];
}

/** Sets IPv4/IPv6 sysctls (net.* keys are per namespace). */
export function sysctlCommand(values: Record<string, string | number>): FollowUp {
  return ['sysctl', '-q', '-w', ...Object.entries(values).map(([k, v]) => `${k}=${v}`)];
}

/**
 * Keeps the kernel's IP stack off devices whose frames belong to a userspace switch (OVS netdev reads
 * them through AF_PACKET, but the kernel still sees them): no ARP answers for local addresses, strict
 * reverse-path filtering (nothing received there is delivered or routed), no IPv6. Without this the kernel
 * answers a pod's ARP for the gateway and routes its traffic around the switch.
 */
export function isolateFromHostStackCommand(...devs: string[]): FollowUp {
  const values: Record<string, number> = {};
  for (const d of devs) {
    const key = d.replaceAll('.', '/');
    values[`net.ipv4.conf.${key}.arp_ignore`] = 8;
    values[`net.ipv4.conf.${key}.rp_filter`] = 1;
    values[`net.ipv6.conf.${key}.disable_ipv6`] = 1;
  }
  return sysctlCommand(values);
}

/** What `ip -json -details link show` reports of one link (fields Seine reads). */
export interface Link {
  ifindex: number;
  ifname: string;
  link?: string;
  link_index?: number;
  link_netnsid?: number;
  flags: string[];
  mtu: number;
  operstate: string;
  address?: string;
  master?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

export interface AddrInfo {
  family: 'inet' | 'inet6';
  local: string;
  prefixlen: number;
  scope?: string;
}

export interface LinkAddrs {
  ifname: string;
  address?: string;
  addr_info: AddrInfo[];
}

export interface Route {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  prefsrc?: string;
  metric?: number;
  table?: string;
  flags?: string[];
}

export interface LinkChange {
  up?: boolean;
  mtu?: number;
  mac?: string;
  name?: string;
  /** Move to this netns (name or path). */
  netns?: string;
  master?: string;
}

/**
 * Builds an `ip -batch -` script so several changes cost one process spawn.
 * Each method appends one iproute2 command line.
 */
export class IpBatch {
  readonly lines: string[] = [];

  raw(line: string): this {
    this.lines.push(line);
    return this;
  }

  /** A veth pair; the peer goes straight into `peerNetns` (a path or name) when given. */
  addVeth(name: string, peer: string, opts: { peerNetns?: string; mtu?: number; mac?: string; peerMac?: string } = {}): this {
    const mtu = opts.mtu ? ` mtu ${opts.mtu}` : '';
    const mac = opts.mac ? ` address ${opts.mac}` : '';
    const peerMac = opts.peerMac ? ` address ${opts.peerMac}` : '';
    const ns = opts.peerNetns ? ` netns ${opts.peerNetns}` : '';
    return this.raw(`link add ${name}${mtu}${mac} type veth peer name ${peer}${mtu}${peerMac}${ns}`);
  }

  addLink(name: string, kind: string, extra = ''): this {
    return this.raw(`link add ${name} type ${kind}${extra ? ` ${extra}` : ''}`);
  }

  setLink(dev: string, change: LinkChange): this {
    const parts: string[] = [];
    if (change.netns) parts.push(`netns ${change.netns}`);
    if (change.name) parts.push(`name ${change.name}`);
    if (change.mac) parts.push(`address ${change.mac}`);
    if (change.mtu) parts.push(`mtu ${change.mtu}`);
    if (change.master) parts.push(`master ${change.master}`);
    if (change.up !== undefined) parts.push(change.up ? 'up' : 'down');
    return this.raw(`link set dev ${dev} ${parts.join(' ')}`);
  }

  delLink(dev: string): this {
    return this.raw(`link del dev ${dev}`);
  }

  addAddr(dev: string, cidr: string): this {
    return this.raw(`addr replace ${cidr} dev ${dev}`);
  }

  flushAddrs(dev: string): this {
    return this.raw(`addr flush dev ${dev}`);
  }

  /** Adds or replaces a route. `dst` is a CIDR or `default`. */
  replaceRoute(dst: string, opts: { via?: string; dev?: string; src?: string; onlink?: boolean; mtu?: number; table?: string | number; scope?: string } = {}): this {
    const parts = [`route replace ${dst}`];
    if (opts.via) parts.push(`via ${opts.via}`);
    if (opts.dev) parts.push(`dev ${opts.dev}`);
    if (opts.src) parts.push(`src ${opts.src}`);
    if (opts.scope) parts.push(`scope ${opts.scope}`);
    if (opts.mtu) parts.push(`mtu ${opts.mtu}`);
    if (opts.table !== undefined) parts.push(`table ${opts.table}`);
    if (opts.onlink) parts.push('onlink');
    return this.raw(parts.join(' '));
  }

  delRoute(dst: string, opts: { dev?: string; table?: string | number } = {}): this {
    const parts = [`route del ${dst}`];
    if (opts.dev) parts.push(`dev ${opts.dev}`);
    if (opts.table !== undefined) parts.push(`table ${opts.table}`);
    return this.raw(parts.join(' '));
  }

  /** Permanent neighbour entry. */
  replaceNeigh(ip: string, mac: string, dev: string): this {
    return this.raw(`neigh replace ${ip} lladdr ${mac} dev ${dev} nud permanent`);
  }

  get empty(): boolean {
    return this.lines.length === 0;
  }
}

/** iproute2 bound to one network namespace (the caller's own when `netns` is undefined). */
export class IpRoute {
  constructor(readonly netns?: string) {}

  private async json<T>(args: string[]): Promise<T> {
    const { stdout } = await run('ip', ['-json', ...args], { netns: this.netns });
    return (stdout.trim() ? JSON.parse(stdout) : []) as T;
  }

  links(): Promise<Link[]> {
    return this.json<Link[]>(['-details', 'link', 'show']);
  }

  /** The link, or undefined when it does not exist. */
  async link(name: string): Promise<Link | undefined> {
    try {
      const [l] = await this.json<Link[]>(['-details', 'link', 'show', 'dev', name]);
      return l;
    } catch (e) {
      if (e instanceof CommandError && /does not exist|Cannot find device/.test(e.stderr)) return undefined;
      throw e;
    }
  }

  addrs(dev?: string): Promise<LinkAddrs[]> {
    return this.json<LinkAddrs[]>(['addr', 'show', ...(dev ? ['dev', dev] : [])]);
  }

  routes(opts: { table?: string | number; family?: 4 | 6 } = {}): Promise<Route[]> {
    const fam = opts.family === 6 ? ['-6'] : ['-4'];
    return this.json<Route[]>([...fam, 'route', 'show', ...(opts.table !== undefined ? ['table', String(opts.table)] : [])]);
  }

  /**
   * Applies a batch, then the follow-up commands, in one spawn (a process spawned from the agent costs
   * milliseconds of its event loop; these run on every CNI ADD). Stops at the first failing line or command
   * (reported in the error).
   */
  async apply(batch: IpBatch, ...followUps: FollowUp[]): Promise<void> {
    const commands: FollowUp[] = [...(batch.empty ? [] : [['ip', '-batch', '-'] as const]), ...followUps];
    const input = batch.empty ? '' : batch.lines.join('\n') + '\n';
    if (commands.length === 0) return;
    if (commands.length === 1) {
      const [cmd, ...args] = commands[0]!;
      await run(cmd, args, { netns: this.netns, input });
      return;
    }
    await run('sh', ['-ec', commands.map((c) => c.map(shellQuote).join(' ')).join('\n')], { netns: this.netns, input });
  }

  /** Runs a batch with `-force`: every line is tried; failures (e.g. already gone) are ignored. */
  async applyBestEffort(batch: IpBatch): Promise<void> {
    if (batch.empty) return;
    try {
      await run('ip', ['-force', '-batch', '-'], { netns: this.netns, input: batch.lines.join('\n') + '\n' });
    } catch (e) {
      if (!(e instanceof CommandError)) throw e;
    }
  }

  /** Sets IPv4/IPv6 sysctls inside this namespace (net.* keys are per namespace). */
  async sysctl(values: Record<string, string | number>): Promise<void> {
    if (Object.keys(values).length) await this.apply(new IpBatch(), sysctlCommand(values));
  }

  /** See isolateFromHostStackCommand. */
  async isolateFromHostStack(...devs: string[]): Promise<void> {
    if (devs.length) await this.apply(new IpBatch(), isolateFromHostStackCommand(...devs));
  }

  /** Turns TX checksum offload off: required for veths on a userspace (netdev) OVS datapath. */
  async txOffloadOff(...devs: string[]): Promise<void> {
    await this.apply(new IpBatch(), ...devs.map(txOffloadOffCommand));
  }
}
