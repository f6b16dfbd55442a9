// Userspace datapath only. ovs-vswitchd routes its own tunnel packets and resolves the next hop's MAC on the
// first packet to it, dropping that packet meanwhile: the first ping or TCP SYN between two nodes was lost.
// This keeps OVS's tunnel neighbour table seeded for the next hop of every peer node before pod traffic
// needs it, revalidates it with a broadcast ARP so a changed MAC is noticed, puts it back after
// ovs-vswitchd restarts, and announces this node's own MAC (gratuitous ARP) so peers learn a change at once.
import ipaddr from 'ipaddr.js';
import { CommandError, run } from '../../host/exec.js';
import { VswitchdControl } from '../../ovs/vswitchd-control.js';
import { logger } from '../../util/log.js';

const log = logger('tunnel-neighbours');

/** A resolved next hop is asked again this often (a broadcast ARP per next hop): a changed MAC is learnt by then. */
export const REVALIDATE_MS = 60_000;
/** One ARP request per next hop, all at once; an unanswered one is retried on the next sync. */
const ARP_WAIT_SECONDS = 1;

export interface TunnelNeighboursOptions {
  /** The node's network namespace (undefined: this one). */
  netns?: string;
  /** ovs-vswitchd's run directory (its pidfile and control socket). */
  ovsRundir: string;
  /** The bridge holding the node IP, through which OVS sends tunnel packets. */
  bridge: string;
}

export interface NeighbourSyncResult {
  /** Next hops whose entry was written to OVS in this sync. */
  seeded: string[];
  /** Peers whose next hop did not answer (not up yet, or gone): retried on the next sync. */
  unresolved: string[];
}

interface Resolved {
  mac: string;
  at: number;
}

/** `ovs-appctl tnl/neigh/show` as ip -> mac for one bridge. */
export function parseTunnelNeighbours(text: string, bridge: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const [ip, mac, br] = line.trim().split(/\s+/);
    if (br === bridge && ip && mac && ipaddr.isValid(ip)) out.set(ip, mac.toLowerCase());
  }
  return out;
}

/** The replies in arping's output: "Unicast reply from 172.28.0.13 [EA:1D:D4:B6:EF:94]  1.434ms". */
export function parseArpingReplies(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/reply from (\S+) \[([0-9A-Fa-f:]{17})\]/g)) out.set(m[1]!, m[2]!.toLowerCase());
  return out;
}

export class TunnelNeighbours {
  private readonly resolved = new Map<string, Resolved>();

  constructor(private readonly o: TunnelNeighboursOptions) {
    this.control = new VswitchdControl(o.ovsRundir);
  }

  private readonly control: VswitchdControl;

  private appctl(args: string[]): Promise<string> {
    return this.control.appctl(args);
  }

  /** The next hop of each peer, as the node's routing table says (the table OVS routes its tunnels by). */
  private async nextHops(peers: readonly string[]): Promise<Map<string, string>> {
    // -force: a peer without a route fails its own line only (and the exit status), not the rest.
    const input = peers.map((p) => `route get ${p}\n`).join('');
    let stdout: string;
    try {
      stdout = (await run('ip', ['-json', '-force', '-batch', '-'], { netns: this.o.netns, input, timeoutMs: 10_000 })).stdout;
    } catch (e) {
      if (!(e instanceof CommandError) || e.signal) throw e;
      stdout = e.stdout;
    }
    const hops = new Map<string, string>();
    for (const line of stdout.split('\n').filter(Boolean)) {
      const [r] = JSON.parse(line) as Array<{ dst: string; gateway?: string; dev?: string }>;
      if (r && r.dev === this.o.bridge) hops.set(r.dst, r.gateway ?? r.dst);
    }
    return hops;
  }

  /** One broadcast ARP request to each address, all in parallel; the MACs that answered. */
  private async arp(ips: readonly string[]): Promise<Map<string, string>> {
    if (!ips.length) return new Map();
    // Addresses are validated IPs and the bridge a checked name: nothing here needs shell quoting.
    const script = ips.map((ip) => `arping -c 1 -w ${ARP_WAIT_SECONDS} -I ${this.o.bridge} ${ip} &`).join('\n') + '\nwait\n';
    const { stdout } = await run('sh', ['-c', script], { netns: this.o.netns, timeoutMs: 15_000 });
    return parseArpingReplies(stdout);
  }

  /**
   * Makes OVS's tunnel neighbour table hold the current MAC of every peer's next hop. A next hop is asked by
   * ARP when it was never asked, when it was last asked REVALIDATE_MS ago, or when OVS holds another MAC for it
   * (OVS learns from ARP replies it sees, e.g. a peer's announcement: newer than what was asked, or not);
   * what answered is written where OVS lacks it or differs. Cheap when nothing is due: one `ip` and one
   * `ovs-appctl` call.
   */
  async sync(peers: readonly string[], now = Date.now()): Promise<NeighbourSyncResult> {
    const valid = [...new Set(peers)].filter((p) => ipaddr.IPv4.isValidFourPartDecimal(p));
    if (!valid.length) return { seeded: [], unresolved: [] };
    const hops = await this.nextHops(valid);
    const current = parseTunnelNeighbours(await this.appctl(['tnl/neigh/show']), this.o.bridge);
    const due = [...new Set(hops.values())].filter((h) => {
      const r = this.resolved.get(h);
      const held = current.get(h);
      return !r || now - r.at >= REVALIDATE_MS || (held !== undefined && held !== r.mac);
    });
    for (const [ip, mac] of await this.arp(due)) this.resolved.set(ip, { mac, at: now });
    const seeded: string[] = [];
    for (const hop of new Set(hops.values())) {
      const r = this.resolved.get(hop);
      const held = current.get(hop);
      // A MAC OVS holds is replaced only by one that answered just now.
      if (!r || held === r.mac || (held !== undefined && r.at !== now)) continue;
      await this.appctl(['tnl/neigh/set', this.o.bridge, hop, r.mac]);
      seeded.push(hop);
    }
    // A next hop that no longer answers keeps its last MAC until it answers again (a node being restarted).
    const unresolved = valid.filter((p) => {
      const hop = hops.get(p);
      return !hop || !this.resolved.has(hop);
    });
    if (seeded.length) log.info({ seeded: seeded.map((h) => `${h} ${this.resolved.get(h)!.mac}`) }, 'tunnel next hops seeded');
    if (unresolved.length) log.debug({ unresolved }, 'tunnel next hops not resolved yet');
    return { seeded, unresolved };
  }

  /** Tells the underlay (and the peers' OVS, which learns from ARP replies) this node's MAC: a gratuitous ARP reply. */
  async announce(nodeIp: string): Promise<void> {
    if (!ipaddr.IPv4.isValidFourPartDecimal(nodeIp)) throw new Error(`not an IPv4 address: ${nodeIp}`);
    // arping -A exits non-zero as nobody answers an announcement.
    await run('arping', ['-A', '-c', '1', '-I', this.o.bridge, nodeIp], { netns: this.o.netns, timeoutMs: 10_000 }).catch((e: unknown) => {
      if (!(e instanceof CommandError) || e.signal || e.exitCode === null) throw e;
    });
  }
}
