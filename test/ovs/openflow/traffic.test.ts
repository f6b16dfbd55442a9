import { spawn } from 'node:child_process';
import { commandLine, run, succeeds } from '../../../src/host/exec.js';
import { IpBatch } from '../../../src/host/ip.js';
import { CookieOwner, makeCookie } from '../../../src/ovs/openflow/cookie.js';
import { addFlow, deleteFlow, modifyFlow, setGroup, type Flow } from '../../../src/ovs/openflow/flow.js';
import { FlowWriter } from '../../../src/ovs/openflow/writer.js';
import { OvsSandbox, type SandboxPod } from '../../harness/sandbox.js';

const BR = 'br0';
const P1 = 1;
const P2 = 2;
const P3 = 3;
const cookie = (obj: number): bigint => makeCookie(CookieOwner.primary, 1, obj);

function ping(from: SandboxPod, to: SandboxPod, count: number): Promise<boolean> {
  return succeeds('ping', ['-c', String(count), '-i', '0.2', '-W', '1', '-q', to.addr], { netns: from.netns, timeoutMs: 20_000 });
}

/**
 * Starts a one-datagram UDP listener in a pod and resolves with what it received (empty if nothing
 * came within the timeout). The listener is our own child process and ends by itself.
 */
async function udpReceive(pod: SandboxPod, port: number, send: () => Promise<void>): Promise<string> {
  const argv = commandLine('timeout', ['5', 'nc', '-u', '-l', '-W', '1', String(port)], pod.netns);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
  let got = '';
  child.stdout.on('data', (b: Buffer) => (got += b.toString()));
  const exited = new Promise<void>((r) => child.on('close', () => r()));
  try {
    // Wait until the listener is bound.
    for (let i = 0; i < 50; i++) {
      const { stdout } = await run('ss', ['-Hlun', `sport = :${port}`], { netns: pod.netns });
      if (stdout.trim()) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await send();
    await exited;
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  }
  return got;
}

function udpSend(from: SandboxPod, to: SandboxPod, port: number, text: string): Promise<void> {
  return run('nc', ['-u', '-w', '1', '-q', '0', to.addr, String(port)], { netns: from.netns, input: `${text}\n`, timeoutMs: 10_000 }).then(() => undefined);
}

describe('flows on real traffic between two pods', () => {
  let sb: OvsSandbox;
  let w: FlowWriter;
  let pod1: SandboxPod;
  let pod2: SandboxPod;
  let pod3: SandboxPod;

  const fwd = (obj: number, proto: 'arp' | 'ip', inPort: number, outPort: number): Flow => ({
    table: 0,
    priority: 100,
    cookie: cookie(obj),
    match: { in_port: inPort, protocol: proto },
    actions: [{ type: 'output', port: outPort }],
  });
  const ip12 = fwd(3, 'ip', P1, P2);
  const ip21 = fwd(4, 'ip', P2, P1);
  const dropIcmp1: Flow = { table: 0, priority: 200, cookie: cookie(5), match: { in_port: P1, protocol: 'icmp' }, actions: [] };
  const packets = async (f: Flow): Promise<bigint> => {
    const flows = await w.dumpFlows({ table: f.table, cookie: { value: f.cookie!, mask: (1n << 64n) - 1n } }, { fresh: true });
    expect(flows).toHaveLength(1);
    return flows[0]!.nPackets;
  };

  beforeAll(async () => {
    sb = await OvsSandbox.start();
    await sb.addBridge(BR);
    pod1 = await sb.addPod('10.20.0.1/24');
    pod2 = await sb.addPod('10.20.0.2/24');
    pod3 = await sb.addPod('10.20.0.3/24');
    for (const [pod, ofport] of [
      [pod1, P1],
      [pod2, P2],
      [pod3, P3],
    ] as const) {
      await sb.ovs.vsctl(['add-port', BR, pod.hostIf, '--', 'set', 'interface', pod.hostIf, `ofport_request=${ofport}`]);
    }
    w = FlowWriter.forBridge(sb.ovs, BR);
  });
  afterAll(async () => {
    await sb?.close();
  });

  it('forwards ARP and IP between the two ports with flows installed in one bundle', async () => {
    const bundles = w.stats.bundles;
    await w.submit([fwd(1, 'arp', P1, P2), fwd(2, 'arp', P2, P1), ip12, ip21].map(addFlow));
    expect(w.stats.bundles - bundles).toBe(1);
    expect(await ping(pod1, pod2, 2)).toBe(true);

    const [before12, before21] = [await packets(ip12), await packets(ip21)];
    expect(await ping(pod1, pod2, 5)).toBe(true);
    // Five echo requests one way, five replies the other.
    expect((await packets(ip12)) - before12).toBe(5n);
    expect((await packets(ip21)) - before21).toBe(5n);
  });

  it('a drop flow stops exactly pod1→pod2 ICMP and counts the dropped packets', async () => {
    await w.add(dropIcmp1);
    expect(await ping(pod1, pod2, 5)).toBe(false);
    expect(await packets(dropIcmp1)).toBe(5n);

    // pod2 → pod1 still flows: pod1 receives a datagram from pod2...
    expect(await udpReceive(pod1, 9001, () => udpSend(pod2, pod1, 9001, 'from-pod2'))).toBe('from-pod2\n');
    // ...and pod1 can still send non-ICMP traffic to pod2.
    expect(await udpReceive(pod2, 9002, () => udpSend(pod1, pod2, 9002, 'from-pod1'))).toBe('from-pod1\n');
    expect(await packets(dropIcmp1)).toBe(5n);

    await w.delete(dropIcmp1);
    expect(await ping(pod1, pod2, 2)).toBe(true);
  });

  it('a select group skips buckets whose watch_port is down and reports per-bucket stats', async () => {
    // pod3's port is down: its bucket must never be chosen, however heavy.
    await sb.ip.apply(new IpBatch().setLink(pod3.hostIf, { up: false }));
    await w.submit([
      setGroup({
        id: 10,
        type: 'select',
        selectionMethod: 'hash',
        fields: ['ip_src', 'ip_dst'],
        buckets: [
          { id: 0, weight: 100, watchPort: P3, actions: [{ type: 'output', port: P3 }] },
          { id: 1, weight: 1, watchPort: P2, actions: [{ type: 'output', port: P2 }] },
        ],
      }),
      modifyFlow({ ...ip12, actions: [{ type: 'group', id: 10 }] }),
    ]);
    const [installed] = (await w.dumpGroups()).filter((g) => g.id === 10);
    expect(installed?.buckets.map((b) => [b.id, b.weight, b.watchPort])).toEqual([
      [0, 100, P3],
      [1, 1, P2],
    ]);

    expect(await ping(pod1, pod2, 5)).toBe(true);
    const [stats] = await w.groupStats(10, { fresh: true });
    expect(stats).toMatchObject({ id: 10, refCount: 1, packets: 5n });
    expect(stats!.buckets.map((b) => b.packets)).toEqual([0n, 5n]);
    expect(stats!.bytes).toBe(stats!.buckets[1]!.bytes);

    await w.submit([modifyFlow(ip12), deleteFlow(dropIcmp1)]);
  });
});
