import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { commandLine, run, succeeds } from '../../../src/host/exec.js';
import { IpBatch } from '../../../src/host/ip.js';
import { FlowWriter } from '../../../src/ovs/openflow/writer.js';
import type { LocalPod, RoutedNodeConfig, PeerNode, PipelineState } from '../../../src/primary/pipeline/index.js';
import { OvsSandbox, type SandboxPod } from '../../harness/sandbox.js';

export const BR_INT = 'br-int';
export const BR_PHY = 'br-phy';
export const GW = 'seine-gw0';
export const TUN = 'seine-tun0';
export const GW_OFPORT = 2;
export const TUN_OFPORT = 1;
export const POD_MTU = 1450;
export const CLUSTER_CIDR = '10.244.0.0/16';

/** A pod stand-in on br-int: the sandbox's pod plus what the pipeline knows of it. */
export interface TestPod extends SandboxPod {
  local: LocalPod;
}

/** One node: a sandbox with br-int, the gateway port and pods, and the pipeline state that describes it. */
export interface TestNode {
  sb: OvsSandbox;
  w: FlowWriter;
  nodeIp: string;
  node: RoutedNodeConfig;
  pods: TestPod[];
  peers: PeerNode[];
}

export const state = (n: TestNode, pods: readonly TestPod[] = n.pods): PipelineState => ({ node: n.node, pods: pods.map((p) => p.local), peers: n.peers });

/** The design's gateway MAC: 0a:00 followed by the node IP's octets. */
export function gatewayMac(nodeIp: string): string {
  return ['0a', '00', ...ipaddr.IPv4.parse(nodeIp).octets.map((o) => o.toString(16).padStart(2, '0'))].join(':');
}

/** `offset` addresses after the network address of a /24 (enough for these tests). */
export const hostIn = (cidr: string, offset: number): string => cidr.replace(/\.0\/24$/, `.${offset}`);

async function ofportOf(sb: OvsSandbox, iface: string): Promise<number> {
  return Number((await sb.ovs.vsctl(['get', 'interface', iface, 'ofport'])).trim());
}

/**
 * Starts a node: br-int (netdev, OpenFlow 1.5, fail_mode secure), seine-gw0 (internal, ofport 2, the
 * gateway MAC through the Interface mac column) addressed with the gateway IP in the node namespace, and
 * `podCount` pods on veths with MTU 1450 and a default route via the gateway. No flows yet.
 */
export async function startNode(opts: { nodeIp: string; podCidr: string; mode: RoutedNodeConfig['mode']; podCount: number; round?: number }): Promise<TestNode> {
  const sb = await OvsSandbox.start();
  try {
    const gwIp = hostIn(opts.podCidr, 1);
    const gwMac = gatewayMac(opts.nodeIp);
    await sb.addBridge(BR_INT);
    await sb.ovs.vsctl(['add-port', BR_INT, GW, '--', 'set', 'interface', GW, 'type=internal', `ofport_request=${GW_OFPORT}`, `mac="${gwMac}"`]);
    expect(await ofportOf(sb, GW)).toBe(GW_OFPORT);
    const prefix = opts.podCidr.split('/')[1]!;
    await sb.ip.apply(new IpBatch().setLink(GW, { mtu: POD_MTU, up: true }).addAddr(GW, `${gwIp}/${prefix}`));
    expect((await sb.ip.link(GW))?.address).toBe(gwMac);

    const pods: TestPod[] = [];
    for (let i = 0; i < opts.podCount; i++) {
      const ofport = 3 + i;
      const p = await sb.addPod(`${hostIn(opts.podCidr, 2 + i)}/${prefix}`);
      await p.ip.apply(new IpBatch().setLink('eth0', { mtu: POD_MTU }).replaceRoute('default', { via: gwIp, dev: 'eth0' }));
      await sb.ip.apply(new IpBatch().setLink(p.hostIf, { mtu: POD_MTU }));
      await sb.ovs.vsctl(['add-port', BR_INT, p.hostIf, '--', 'set', 'interface', p.hostIf, `ofport_request=${ofport}`]);
      expect(await ofportOf(sb, p.hostIf)).toBe(ofport);
      pods.push({ ...p, local: { ofport, ip: p.addr, mac: p.mac } });
    }
    const node: RoutedNodeConfig = {
      mode: opts.mode,
      round: opts.round ?? 1,
      gatewayOfport: GW_OFPORT,
      tunnelOfport: TUN_OFPORT,
      gatewayIp: gwIp,
      gatewayMac: gwMac,
      podCidr: opts.podCidr,
      clusterCidr: CLUSTER_CIDR,
    };
    return { sb, w: FlowWriter.forBridge(sb.ovs, BR_INT), nodeIp: opts.nodeIp, node, pods, peers: [] };
  } catch (e) {
    await sb.close();
    throw e;
  }
}

/** Pings `to` from a namespace; true when at least one of `count` echoes came back. */
export function ping(netns: string, to: string, opts: { count?: number; from?: string } = {}): Promise<boolean> {
  const count = opts.count ?? 3;
  const args = ['-c', String(count), '-i', '0.2', '-W', '1', '-q', ...(opts.from ? ['-I', opts.from] : []), to];
  return succeeds('ping', args, { netns, timeoutMs: 20_000 });
}

/** The TTL of the echo reply to one ping (undefined without a reply): 64 minus the routed hops both ways. */
export async function replyTtl(netns: string, to: string): Promise<number | undefined> {
  const { stdout } = await run('ping', ['-c', '1', '-W', '2', to], { netns, timeoutMs: 10_000 }).catch(() => ({ stdout: '' }));
  const m = /ttl=(\d+)/.exec(stdout);
  return m ? Number(m[1]) : undefined;
}

/** Waits until something listens on a TCP port in the namespace. */
async function listening(netns: string, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const { stdout } = await run('ss', ['-Hltn', `sport = :${port}`], { netns });
    if (stdout.trim()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${port}`);
}

/**
 * Sends `bytes` random bytes over TCP from one namespace to a listener in another and returns the
 * SHA-256 of what was sent and of what arrived (equal when the transfer worked). Several segments of
 * full MTU size make a checksum or MTU problem show. The listener is our own child and ends by itself.
 */
export async function tcpTransfer(from: string, toNetns: string, toIp: string, port: number, bytes = 256 * 1024): Promise<{ sent: string; received: string }> {
  const payload = randomBytes(bytes).toString('base64').slice(0, bytes);
  const argv = commandLine('timeout', ['20', 'nc', '-l', String(port)], toNetns);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => chunks.push(b));
  const exited = new Promise<void>((r) => child.on('close', () => r()));
  try {
    await listening(toNetns, port);
    await run('nc', ['-N', '-w', '5', toIp, String(port)], { netns: from, input: payload, timeoutMs: 20_000 }).catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 10_000)))]);
    clearTimeout(timer);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  }
  const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
  return { sent: sha(payload), received: sha(Buffer.concat(chunks)) };
}
