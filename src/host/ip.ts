import { CommandError, commandLine, run, runIpStepsNatively, shellQuote } from './exec.js';

/**
 * A value that cannot be handed to a command as the single, literal argument it is meant to be (it would
 * split, end a line, start a comment or be read as something else). Thrown while a command is being built,
 * so nothing has run.
 */
export class UnsafeArgumentError extends Error {
  constructor(
    /** What the value was for, e.g. "netns" or "link name". */
    readonly what: string,
    readonly value: string,
    readonly reason: string,
  ) {
    super(`${what} ${JSON.stringify(value)} ${reason}`);
    this.name = 'UnsafeArgumentError';
  }
}

// Control characters (C0, DEL, C1): a newline ends a batch line, NUL ends a C string, none belongs in a name.
const CONTROL = /\p{Cc}/u;

/**
 * One word of an `ip -batch` line, exactly as iproute2 (lib/utils.c) reads it back: getcmdline cuts the line
 * at the first '#' (even inside quotes) and joins a line ending in a backslash with the next; makeargs splits
 * on space, tab, CR and LF, and a word that starts with ' or " runs to the next same quote, without escapes.
 * So '#' and control characters are refused, and a word that is empty, holds a space, starts with a quote or
 * ends in a backslash is quoted with a quote character it does not contain.
 */
export function batchWord(word: string, what = 'argument'): string {
  if (CONTROL.test(word)) throw new UnsafeArgumentError(what, word, 'contains a control character');
  if (word.includes('#')) throw new UnsafeArgumentError(what, word, "contains '#' (a comment in an iproute2 batch)");
  if (word !== '' && !word.includes(' ') && !/^['"]/.test(word) && !word.endsWith('\\')) return word;
  if (!word.includes('"')) return `"${word}"`;
  if (!word.includes("'")) return `'${word}'`;
  throw new UnsafeArgumentError(what, word, 'holds a space or leading quote and both quote characters');
}

/** Words per command line: iproute2 before 5.x split at most 99 (later ones 511); ours stay far below. */
const MAX_BATCH_WORDS = 99;

/** A network device name as the kernel accepts it (dev_valid_name), and that no command reads as an option. */
export function checkIfname(name: string, what = 'link name'): string {
  if (!name || Buffer.byteLength(name) > 15) throw new UnsafeArgumentError(what, name, 'is not 1 to 15 bytes long');
  if (name === '.' || name === '..' || /[/:\s]/.test(name) || CONTROL.test(name)) throw new UnsafeArgumentError(what, name, "is not a valid device name (no '/', ':', whitespace, '.' or '..')");
  if (name.startsWith('-')) throw new UnsafeArgumentError(what, name, "starts with '-' (read as an option)");
  return name;
}

/**
 * A network namespace for `netns`: an absolute path, or the name of one under /var/run/netns. iproute2 reads
 * anything else that parses as a number as a process id (`netns 1` is the init namespace), and a relative
 * path relative to its working directory.
 */
export function checkNetnsRef(ref: string): string {
  if (ref.includes('/')) {
    if (!ref.startsWith('/')) throw new UnsafeArgumentError('netns', ref, 'is a relative path');
  } else if (!/^[A-Za-z0-9_.-]+$/.test(ref) || ref === '.' || ref === '..' || /^[0-9xX]+$/.test(ref) || ref.startsWith('-')) {
    throw new UnsafeArgumentError('netns', ref, 'is neither an absolute path nor a namespace name');
  }
  batchWord(ref, 'netns');
  return ref;
}

/** A command run in the namespace right after a batch, in the same spawn (see IpRoute.apply). */
export type FollowUp = readonly [cmd: string, ...args: string[]];

/** TX checksum offload off: required for veths on a userspace (netdev) OVS datapath. */
export function txOffloadOffCommand(dev: string): FollowUp {
  return ['ethtool', '-K', checkIfname(dev), 'tx', 'off'];
}

/** Sets IPv4/IPv6 sysctls (net.* keys are per namespace). */
export function sysctlCommand(values: Record<string, string | number>): FollowUp {
  const assignments = Object.entries(values).map(([k, v]) => {
    // sysctl splits `key=value` at the first '='; a key starting with '-' would be an option.
    if (!k || k.includes('=') || k.startsWith('-') || /\s/.test(k) || CONTROL.test(k)) throw new UnsafeArgumentError('sysctl key', k, "is empty, starts with '-' or holds '=' or whitespace");
    if (CONTROL.test(String(v))) throw new UnsafeArgumentError(`sysctl ${k} value`, String(v), 'contains a control character');
    return `${k}=${v}`;
  });
  return ['sysctl', '-q', '-w', ...assignments];
}

/**
 * A follow-up as one shell command. Sysctl writes become the shell's own writes to /proc/sys (the files of the
 * shell's network namespace for net.* keys): no process for them.
 */
function shellCommand(c: FollowUp): string {
  if (c[0] === 'sysctl' && c[1] === '-q' && c[2] === '-w' && c.length > 3) {
    const writes = c.slice(3).map((a) => {
      const at = a.indexOf('=');
      // A key's '.' separates directories; a '/' in it stands for a '.' within a name (a device's).
      const parts = a.slice(0, at).split('.').map((p) => p.replaceAll('/', '.'));
      if (at <= 0 || parts.some((p) => p === '' || p === '.' || p === '..')) return undefined;
      // printf, not echo: dash's echo would read backslashes in a value as escapes.
      return `printf '%s\\n' ${shellQuote(a.slice(at + 1))} > ${shellQuote(`/proc/sys/${parts.join('/')}`)}`;
    });
    if (writes.every((w) => w !== undefined)) return `{ ${writes.join(' && ')}; }`;
  }
  return c.map(shellQuote).join(' ');
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
    // sysctl keys use '.' as separator, so a '.' in the device name is written as '/'.
    const key = checkIfname(d).replaceAll('.', '/');
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
 * Builds an `ip -batch -` script so several changes cost one process spawn. Each method appends one iproute2
 * command line from separate words; every word is checked or quoted (batchWord), device names and namespaces
 * are validated, so no value can add a line or an argument. Invalid input throws UnsafeArgumentError here,
 * before anything runs.
 */
export class IpBatch {
  private readonly script: string[] = [];

  /** One command line, e.g. `command('route', 'append', 'default', 'via', gw, 'dev', ifname)`. */
  command(...words: string[]): this {
    if (words.length === 0) throw new RangeError('an ip batch command needs at least one word');
    if (words.length > MAX_BATCH_WORDS) throw new RangeError(`an ip batch command takes at most ${MAX_BATCH_WORDS} words, not ${words.length}`);
    this.script.push(words.map((w) => batchWord(w)).join(' '));
    return this;
  }

  /** The command lines, as iproute2 will read them. */
  get lines(): readonly string[] {
    return this.script;
  }

  /** A veth pair; the peer goes straight into `peerNetns` (a path or name) when given. */
  addVeth(name: string, peer: string, opts: { peerNetns?: string; mtu?: number; mac?: string; peerMac?: string } = {}): this {
    const mtu = opts.mtu ? ['mtu', String(opts.mtu)] : [];
    const mac = opts.mac ? ['address', opts.mac] : [];
    const peerMac = opts.peerMac ? ['address', opts.peerMac] : [];
    const ns = opts.peerNetns ? ['netns', checkNetnsRef(opts.peerNetns)] : [];
    return this.command('link', 'add', 'name', checkIfname(name), ...mtu, ...mac, 'type', 'veth', 'peer', 'name', checkIfname(peer, 'peer name'), ...mtu, ...peerMac, ...ns);
  }

  /** A link of another kind, with its type's own arguments (e.g. 'stp_state', '0'). */
  addLink(name: string, kind: string, ...typeArgs: string[]): this {
    return this.command('link', 'add', 'name', checkIfname(name), 'type', kind, ...typeArgs);
  }

  setLink(dev: string, change: LinkChange): this {
    const words: string[] = [];
    if (change.netns) words.push('netns', checkNetnsRef(change.netns));
    if (change.name) words.push('name', checkIfname(change.name));
    if (change.mac) words.push('address', change.mac);
    if (change.mtu) words.push('mtu', String(change.mtu));
    if (change.master) words.push('master', checkIfname(change.master, 'master'));
    if (change.up !== undefined) words.push(change.up ? 'up' : 'down');
    return this.command('link', 'set', 'dev', checkIfname(dev), ...words);
  }

  delLink(dev: string): this {
    return this.command('link', 'del', 'dev', checkIfname(dev));
  }

  addAddr(dev: string, cidr: string): this {
    return this.command('addr', 'replace', cidr, 'dev', checkIfname(dev));
  }

  flushAddrs(dev: string): this {
    return this.command('addr', 'flush', 'dev', checkIfname(dev));
  }

  /** Adds or replaces a route. `dst` is a CIDR or `default`. */
  replaceRoute(dst: string, opts: { via?: string; dev?: string; src?: string; onlink?: boolean; mtu?: number; table?: string | number; scope?: string } = {}): this {
    const words = ['route', 'replace', dst];
    if (opts.via) words.push('via', opts.via);
    if (opts.dev) words.push('dev', checkIfname(opts.dev));
    if (opts.src) words.push('src', opts.src);
    if (opts.scope) words.push('scope', opts.scope);
    if (opts.mtu) words.push('mtu', String(opts.mtu));
    if (opts.table !== undefined) words.push('table', String(opts.table));
    if (opts.onlink) words.push('onlink');
    return this.command(...words);
  }

  delRoute(dst: string, opts: { dev?: string; table?: string | number } = {}): this {
    const words = ['route', 'del', dst];
    if (opts.dev) words.push('dev', checkIfname(opts.dev));
    if (opts.table !== undefined) words.push('table', String(opts.table));
    return this.command(...words);
  }

  /** Permanent neighbour entry. */
  replaceNeigh(ip: string, mac: string, dev: string): this {
    return this.command('neigh', 'replace', ip, 'lladdr', mac, 'dev', checkIfname(dev), 'nud', 'permanent');
  }

  get empty(): boolean {
    return this.script.length === 0;
  }
}

/** A namespace reference (a path, or a name made by `ip netns add`) as the path nsenter takes. */
function netnsFile(ref: string): string {
  return checkNetnsRef(ref).includes('/') ? ref : `/var/run/netns/${ref}`;
}

/** One step of IpRoute.applySteps. */
export interface ApplyStep {
  /** Where it runs when not in the IpRoute's own namespace. */
  netns?: string;
  batch: IpBatch;
  followUps?: FollowUp[];
}

/** applySteps exits with this plus the index of the step that failed. */
export const STEP_EXIT_BASE = 10;
/** Ends an ip batch given inline; no batch line can be this word alone. */
const HEREDOC = 'SEINE_IP_BATCH';

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
    const [cmd, ...args]: readonly string[] = commands.length === 1 ? commands[0]! : ['sh', '-ec', commands.map((c) => c.map(shellQuote).join(' ')).join('\n')];
    if (await runIpStepsNatively({ ...this.nsField(), steps: [{ lines: batch.lines, followUps }], failCode: 1 }, commandLine(cmd!, args, this.netns))) return;
    await run(cmd!, args, { netns: this.netns, input });
  }

  private nsField(): { netns?: string } {
    return this.netns ? { netns: netnsFile(this.netns) } : {};
  }

  /**
   * Applies steps in order, in one spawn: each a batch (and its follow-up commands) in this namespace or in
   * another one (`netns`, entered with nsenter). The first failure stops the rest; the CommandError's exit code
   * is STEP_EXIT_BASE plus the failed step's index (another code: the script itself died, e.g. timed out).
   */
  async applySteps(steps: readonly ApplyStep[]): Promise<void> {
    // Every process costs milliseconds here (these run on every CNI ADD): a step in this namespace runs in the
    // script's own shell, each command tested; one in another namespace needs a shell of its own behind nsenter.
    const lines = steps.flatMap((st, i) => {
      const exit = `exit ${STEP_EXIT_BASE + i}`;
      const commands = [...(st.batch.empty ? [] : [{ line: 'ip -batch -', heredoc: st.batch.lines }]), ...(st.followUps ?? []).map((c) => ({ line: shellCommand(c) }))];
      if (commands.length === 0) return [];
      const render = (c: { line: string; heredoc?: readonly string[] }, onFailure: string): string =>
        c.heredoc ? `${c.line} <<'${HEREDOC}' || ${onFailure}\n${c.heredoc.join('\n')}\n${HEREDOC}` : `${c.line} || ${onFailure}`;
      if (!st.netns) return commands.map((c) => render(c, exit));
      const inner = commands.map((c) => render(c, 'exit 1')).join('\n');
      return [`nsenter --net=${shellQuote(netnsFile(st.netns))} -- sh -c ${shellQuote(inner)} || ${exit}`];
    });
    const native = { ...this.nsField(), steps: steps.map((st) => ({ ...(st.netns ? { netns: netnsFile(st.netns) } : {}), lines: st.batch.lines, followUps: st.followUps ?? [] })), failCode: STEP_EXIT_BASE, stepCodes: true };
    if (await runIpStepsNatively(native, commandLine('sh', ['-c', lines.join('\n')], this.netns))) return;
    await run('sh', ['-c', lines.join('\n')], { netns: this.netns });
  }

  /** Deletes the link when it is a veth (checked and deleted in one process); anything else by that name, or none, is left. */
  async delVeth(dev: string): Promise<void> {
    const q = shellQuote(checkIfname(dev));
    await run('sh', ['-c', `if ip -details -json link show dev ${q} 2>/dev/null | grep -q '"info_kind":"veth"'; then ip link del dev ${q} 2>/dev/null || true; fi`], { netns: this.netns });
  }

  /** Runs a batch with `-force`: every line is tried; failures (e.g. already gone) are ignored. */
  async applyBestEffort(batch: IpBatch): Promise<void> {
    if (batch.empty) return;
    try {
      if (await runIpStepsNatively({ ...this.nsField(), steps: [{ lines: batch.lines }], force: true, failCode: 1 }, commandLine('ip', ['-force', '-batch', '-'], this.netns))) return;
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
