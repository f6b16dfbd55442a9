import type { PortAdmission } from '../../../src/agent/port-admission.js';
import { run } from '../../../src/host/exec.js';
import { IpBatch, IpRoute } from '../../../src/host/ip.js';
import { createNetns } from '../../../src/host/netns.js';
import { Vswitch } from '../../../src/ovs/ovsdb/index.js';
import { OvsSecondaryDatapath } from '../../../src/secondary/datapath/index.js';
import type { AttachedInterface, NetworkRealization, SecondaryAttachment } from '../../../src/secondary/datapath/index.js';
import { OvsSandbox } from '../../harness/sandbox.js';
import { captureWhile } from '../../harness/capture.js';

export { tcpTransfer } from '../../primary/pipeline/harness.js';

/** One node: a sandbox (netns + OVS), a Vswitch client and the datapath under test. */
export interface TestNode {
  sb: OvsSandbox;
  vs: Vswitch;
  dp: OvsSecondaryDatapath;
  nodeIp: string;
  pods: number;
}

export function newDatapath(sb: OvsSandbox, vs: Vswitch, nodeIp: string, round = 1, ovsRundir = sb.ovs.rundir, admission?: PortAdmission): OvsSecondaryDatapath {
  return new OvsSecondaryDatapath({ vswitch: vs, ovsRundir, host: sb.ip, nodeIp, userspaceDatapath: true, round, admission });
}

export async function startNode(nodeIp: string): Promise<TestNode> {
  const sb = await OvsSandbox.start();
  try {
    const vs = await Vswitch.connect({ remote: sb.ovs.dbRemote });
    return { sb, vs, dp: newDatapath(sb, vs, nodeIp), nodeIp, pods: 0 };
  } catch (e) {
    await sb.close();
    throw e;
  }
}

export async function stopNode(n: TestNode | undefined): Promise<void> {
  if (!n) return;
  await n.vs.close().catch(() => undefined);
  await n.sb.close();
}

/** An empty pod namespace (loopback up), recorded in the node's ledger. */
export async function podNetns(n: TestNode): Promise<string> {
  const name = `${n.sb.id}-q${++n.pods}`;
  n.sb.ledger.netns(name);
  return createNetns(name);
}

export interface TestPod {
  netns: string;
  ip: IpRoute;
  addr: string;
  mac: string;
  att: AttachedInterface;
}

let macSeq = 0;
/** A locally administered MAC, distinct within this test process. */
export function testMac(): string {
  const n = ++macSeq;
  return `02:5e:${(process.pid & 0xff).toString(16).padStart(2, '0')}:00:${((n >> 8) & 0xff).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`;
}

/** A new pod namespace attached to `network` with one address (CIDR). */
export async function attachPod(
  n: TestNode,
  network: NetworkRealization,
  cidr: string,
  extra: Partial<Pick<SecondaryAttachment, 'routes' | 'mtu' | 'externalIds' | 'ifname'>> = {},
): Promise<TestPod> {
  const netns = await podNetns(n);
  const mac = testMac();
  const att = await n.dp.attach({
    network,
    netns,
    ifname: extra.ifname ?? 'net1',
    hostIfname: `${n.sb.id}s${n.pods}`,
    mac,
    mtu: extra.mtu ?? (network.networkType === 'overlay' ? 1450 : 1500),
    addresses: [cidr],
    routes: extra.routes ?? [],
    externalIds: extra.externalIds ?? { 'pod-name': `pod${n.pods}` },
  });
  return { netns, ip: new IpRoute(netns), addr: cidr.split('/')[0]!, mac, att };
}

export interface PingResult {
  transmitted: number;
  received: number;
  duplicates: number;
  output: string;
}

/** Pings and parses the summary; `DUP!` replies are counted (ping prints one per duplicate). */
export async function ping(netns: string, to: string, count = 3, opts: { interval?: number } = {}): Promise<PingResult> {
  const args = ['-c', String(count), '-i', String(opts.interval ?? 0.2), '-W', '1', to];
  const { stdout } = await run('ping', args, { netns, timeoutMs: 30_000 }).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
  const m = /(\d+) packets transmitted, (\d+) received(?:, \+(\d+) duplicates)?/.exec(stdout);
  return {
    transmitted: Number(m?.[1] ?? 0),
    received: Number(m?.[2] ?? 0),
    duplicates: Math.max(Number(m?.[3] ?? 0), (stdout.match(/DUP!/g) ?? []).length),
    output: stdout,
  };
}

/** Whether `to` answers at least one of a few pings (the first packet over a new tunnel may be lost). */
export async function reaches(netns: string, to: string): Promise<boolean> {
  return (await ping(netns, to, 3)).received > 0;
}

/**
 * Runs tcpdump on `iface` in `netns` while `fn` runs, and returns the printed lines (link-level headers,
 * numeric). The capture is our own child process and is stopped by its pid.
 */
export async function capture(netns: string, iface: string, filter: string[], fn: () => Promise<void>): Promise<string[]> {
  return captureWhile(netns, ['-i', iface, '-e', '-nn', '-Q', 'in', ...filter], fn);
}

/** Like capture, in both directions. */
export async function captureBoth(netns: string, iface: string, filter: string[], fn: () => Promise<void>): Promise<string[]> {
  return captureWhile(netns, ['-i', iface, '-e', '-nn', ...filter], fn);
}

/** The MAC a namespace resolved for an address (its neighbour entry), if any. */
export async function neighbourMac(ip: IpRoute, addr: string): Promise<string | undefined> {
  const { stdout } = await run('ip', ['-json', 'neigh', 'show', addr], { netns: ip.netns });
  const entries = (stdout.trim() ? JSON.parse(stdout) : []) as Array<{ lladdr?: string }>;
  return entries.find((e) => e.lladdr)?.lladdr;
}

/** A veth pair between two namespaces (the peer is made in `bNetns`), both ends up, TX offload off. */
export async function link(a: IpRoute, aName: string, b: IpRoute, bName: string, bNetns: string): Promise<void> {
  await a.apply(new IpBatch().addVeth(aName, bName, { peerNetns: bNetns }).setLink(aName, { up: true }));
  await b.apply(new IpBatch().setLink(bName, { up: true }));
  await a.txOffloadOff(aName);
  await b.txOffloadOff(bName);
}

/** Names of the secondary tunnel ports on a bridge, with their peers. */
export function tunnels(n: TestNode, bridge: string): Record<string, string> {
  return Object.fromEntries(
    n.vs.cache
      .portsOf(bridge)
      .filter((p) => p.externalIds['seine-owner'] === 'secondary-tunnel')
      .map((p) => [p.externalIds['seine-peer']!, p.name]),
  );
}
