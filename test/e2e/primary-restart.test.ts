import type { V1Pod } from '@kubernetes/client-node';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/host/exec.js';
import type { Lab } from '../../src/lab/lab.js';
import { eventually, podExec, podNetns, simplePod, startTestLab, waitRunning } from '../harness/lab.js';

interface IperfInterval {
  sum: { bytes: number; start: number };
}

/** A running iperf3 client; resolves to its per-second intervals. */
function iperfStream(lab: Lab, client: V1Pod, serverIp: string, seconds: number): Promise<IperfInterval[]> {
  return podExec(lab, client, ['iperf3', '-c', serverIp, '-t', String(seconds), '-i', '1', '-J'], (seconds + 30) * 1000).then(
    (out) => (JSON.parse(out) as { intervals: IperfInterval[] }).intervals,
  );
}

async function ofctl(lab: Lab, node: number, args: string[]): Promise<string> {
  const n = lab.nodes[node]!;
  const { stdout } = await run('ovs-ofctl', ['-O', 'OpenFlow15', ...args.slice(0, 1), `unix:${n.ovs.rundir}/br-int.mgmt`, ...args.slice(1)]);
  return stdout;
}

function rounds(flows: string): Set<number> {
  const out = new Set<number>();
  for (const m of flows.matchAll(/cookie=0x([0-9a-f]+)/g)) {
    const c = BigInt(`0x${m[1]}`);
    if (c >> 56n === 1n) out.add(Number((c >> 40n) & 0xffffn));
  }
  return out;
}

async function agentReady(lab: Lab, node: number, afterLines: number): Promise<void> {
  const log = join(lab.nodes[node]!.dirs.logDir, 'seine-agent.log');
  await eventually('agent ready after restart', async () => (readFileSync(log, 'utf8').split('\n').slice(afterLines).some((l) => l.includes('"agent ready"')) ? true : undefined), 60_000);
}

function logLines(lab: Lab, node: number): number {
  return readFileSync(join(lab.nodes[node]!.dirs.logDir, 'seine-agent.log'), 'utf8').split('\n').length;
}

describe('primary network: restarts without disruption', () => {
  let lab: Lab;
  let server: V1Pod;
  let client: V1Pod;
  let remoteClient: V1Pod;
  beforeAll(async () => {
    lab = await startTestLab({ nodes: 2 });
    const [n1, n2] = lab.plan.nodes;
    await lab.core.createNamespacedPod({ namespace: 'default', body: simplePod('server', { node: n1!.name, command: ['iperf3', '-s'] }) });
    await lab.core.createNamespacedPod({ namespace: 'default', body: simplePod('server2', { node: n1!.name, command: ['iperf3', '-s'] }) });
    await lab.core.createNamespacedPod({ namespace: 'default', body: simplePod('client', { node: n1!.name }) });
    await lab.core.createNamespacedPod({ namespace: 'default', body: simplePod('remote', { node: n2!.name }) });
    server = await waitRunning(lab, 'server');
    await waitRunning(lab, 'server2');
    client = await waitRunning(lab, 'client');
    remoteClient = await waitRunning(lab, 'remote');
  }, 120_000);
  afterAll(async () => {
    await lab?.down();
  }, 120_000);

  it('kill -9 of the agent during iperf3: the streams continue; the restarted agent reconciles in a new round', async () => {
    const before = rounds(await ofctl(lab, 0, ['dump-flows']));
    expect(before.size).toBe(1);
    const lines = logLines(lab, 0);
    const local = iperfStream(lab, client, server.status!.podIP!, 8);
    const remote = iperfStream(lab, remoteClient, (await lab.core.readNamespacedPod({ name: 'server2', namespace: 'default' })).status!.podIP!, 8);
    await new Promise((r) => setTimeout(r, 2000));
    const agent = lab.agents.get(lab.plan.nodes[0]!.name)!;
    const oldPid = agent.pid;
    agent.crash();
    const [li, ri] = await Promise.all([local, remote]);
    // Every second of both streams carried data: the connections never stalled.
    for (const intervals of [li, ri]) {
      expect(intervals.length).toBeGreaterThanOrEqual(7);
      for (const i of intervals) expect(i.sum.bytes).toBeGreaterThan(0);
    }
    await agentReady(lab, 0, lines);
    expect(agent.pid).not.toBe(oldPid);
    const after = rounds(await ofctl(lab, 0, ['dump-flows']));
    expect([...after]).toEqual([[...before][0]! + 1]);
    await podExec(lab, client, ['ping', '-c', '2', '-W', '2', remoteClient.status!.podIP!]);
  }, 120_000);

  it('a pod deleted while the agent is down: its port, flows and address are cleaned up when the agent returns', async () => {
    const node = lab.plan.nodes[0]!;
    await lab.core.createNamespacedPod({ namespace: 'default', body: simplePod('doomed', { node: node.name }) });
    const doomed = await waitRunning(lab, 'doomed');
    const ports = async (): Promise<string> => (await lab.nodes[0]!.ovs.vsctl(['list-ports', 'br-int']));
    const portBefore = (await ports()).split('\n').find((p) => p.startsWith('doomed'));
    expect(portBefore).toBeTruthy();
    const agent = lab.agents.get(node.name)!;
    await agent.stop();
    // The kubelet's DEL finds no agent (the shim reports success), the sandbox goes away.
    await lab.core.deleteNamespacedPod({ name: 'doomed', namespace: 'default' });
    await eventually('doomed gone', async () => (existsSync(podNetns(lab, doomed)) ? undefined : true));
    expect(await ports()).toContain(portBefore!);
    const lines = logLines(lab, 0);
    agent.start();
    await agentReady(lab, 0, lines);
    // The agent's reconciliation releases it once it knows the node's pods (within seconds of its start).
    await eventually('the deleted pod\'s port released', async (saw) => {
      const now = await ports();
      saw(now);
      return now.includes(portBefore!) ? undefined : true;
    }, 30_000);
    await eventually('the deleted pod\'s address and flows released', async (saw) => {
      const ipam = JSON.parse(readFileSync(join(lab.nodes[0]!.dirs.stateDir, 'ipam-ipv4.json'), 'utf8')) as { allocations: Array<{ ip: string }> };
      const flows = await ofctl(lab, 0, ['dump-flows']);
      saw({ addresses: ipam.allocations.map((a) => a.ip) });
      return ipam.allocations.some((a) => a.ip === doomed.status!.podIP) || flows.includes(`nw_src=${doomed.status!.podIP},`) ? undefined : true;
    }, 30_000);
  }, 120_000);

  it('ovs-vswitchd restart: the agent restores flows and addresses; the connection survives a short interruption', async () => {
    const lines = logLines(lab, 0);
    // Long enough that TCP's retransmission backoff after the outage still ends inside the stream on a busy machine.
    const local = iperfStream(lab, client, server.status!.podIP!, 25);
    await new Promise((r) => setTimeout(r, 2000));
    await lab.nodes[0]!.ovs.restartVswitchd({ flowRestoreWait: true });
    const log = join(lab.nodes[0]!.dirs.logDir, 'seine-agent.log');
    await eventually('agent restored the datapath', async () => (readFileSync(log, 'utf8').split('\n').slice(lines).some((l) => l.includes('"datapath restored"')) ? true : undefined), 30_000);
    const intervals = await local;
    // iperf3 finished its 25 s with a result: the same TCP connection survived the restart...
    expect(intervals.length).toBeGreaterThanOrEqual(24);
    // ...and carried data again after it (the restart happened around second 2).
    expect(intervals.slice(12).some((i) => i.sum.bytes > 0)).toBe(true);
    expect(intervals.slice(-1)[0]!.sum.bytes).toBeGreaterThan(0);
    await eventually('cross-node traffic after restart', async () => {
      await podExec(lab, client, ['ping', '-c', '1', '-W', '1', remoteClient.status!.podIP!]);
      return true;
    });
    await podExec(lab, client, ['ping', '-c', '1', '-W', '2', lab.plan.externalIp]);
    const ovsConfig = await lab.nodes[0]!.ovs.vsctl(['get', 'Open_vSwitch', '.', 'other_config']);
    expect(ovsConfig).not.toContain('flow-restore-wait');
  }, 120_000);
});
