// Service chains under failure, with real packets in a 3-node lab: a replica that stops forwarding is taken out of
// rotation (and back), FailClosed drops and FailOpen skips a hop left without replicas, and chained connections
// survive a kill -9 of the agents and a restart of ovs-vswitchd.
//
// The chain: client (node 0) -> hop "filter" (Routed, filter-1 on node 1, filter-2 on node 2) -> hop "marker"
// (Transparent, marker-1 on node 2) -> server (node 1), for TCP 80 and 5201 (iperf3); TCP 81 is not classified.
// The packets say which hops they passed: filter sets DSCP 8 on port-80 traffic; marker turns DSCP 8 into 24 and
// DSCP 0 (filter skipped) into 40; the server counts both. Each filter records the source ports of the
// connections it forwards (an nft set), so the test knows which replica carries a connection.
import type { V1Pod } from '@kubernetes/client-node';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import type { ServiceChain } from '../../src/chaining/api/types.js';
import type { Lab } from '../../src/lab/lab.js';
import { sleep } from '../../src/util/wait.js';
import { eventually, kubectl, podExec, simplePod, startTestLab, waitRunning } from '../harness/lab.js';
import { datapathDiagnosis } from '../harness/datapath-diagnosis.js';
import { ConnectionAttempts, connectionPorts, startIperf, type IperfInterval, type IperfRun } from '../harness/pod-traffic.js';

const CHAIN = 'guard';
/**
 * The rate of the long iperf3 streams: steady traffic through the chain that leaves the lab's userspace datapaths
 * (2 cores for 3 nodes) room, so a new connection that fails is one the chain failed, not one lost in a full queue.
 */
const STREAM_RATE = '50M';
const NAD = 'chain-port';
const FUNCTION_PORTS = JSON.stringify([{ name: NAD, interface: 'in0' }, { name: NAD, interface: 'out0' }]);

const FILTER_SCRIPT = `sysctl -qw net.ipv4.ip_forward=1 && nft -f - <<'EOF'
table ip cnf {
  set seen { type inet_service; flags dynamic; size 65535; }
  chain cnfchain {
    type filter hook forward priority 0;
    ip saddr 169.254.200.2 accept
    tcp dport { 80, 5201 } add @seen { tcp sport } ip dscp set 8
  }
}
EOF
exec sleep infinity`;

const MARKER_SCRIPT = `ip link add br0 type bridge && ip link set in0 master br0 && ip link set out0 master br0 && ip link set br0 up && nft -f - <<'EOF'
table bridge cnf {
  chain cnfchain {
    type filter hook forward priority 0;
    tcp dport 80 ip dscp 8 ip dscp set 24 accept
    tcp dport 80 ip dscp 0 ip dscp set 40 accept
    tcp dport 80 counter drop
  }
}
EOF
exec sleep infinity`;

const SERVER_SCRIPT = `nft -f - <<'EOF'
table ip srv {
  counter hopped {}
  counter skipped {}
  chain input {
    type filter hook input priority 0;
    tcp dport 80 ip dscp 24 counter name hopped
    tcp dport 80 ip dscp 40 counter name skipped
  }
}
EOF
nc -dlk -p 80 >/dev/null & nc -dlk -p 81 >/dev/null & exec iperf3 -s`;

const chainManifest = {
  apiVersion: 'crd.seine.dev/v1alpha1',
  kind: 'ServiceChain',
  metadata: { name: CHAIN, namespace: 'default' },
  spec: {
    classifier: {
      source: { podSelector: { matchLabels: { role: 'client' } } },
      destination: { podSelector: { matchLabels: { role: 'server' } } },
      protocol: 'TCP',
      ports: [{ port: 80 }, { port: 5201 }],
    },
    hops: [
      { name: 'filter', podSelector: { matchLabels: { cnf: 'filter' } }, interfaces: { ingress: 'in0', egress: 'out0' }, mode: 'Routed', failurePolicy: 'FailClosed', healthCheck: { type: 'Forwarding', periodSeconds: 1, failureThreshold: 2 } },
      { name: 'marker', podSelector: { matchLabels: { cnf: 'marker' } }, interfaces: { ingress: 'in0', egress: 'out0' }, mode: 'Transparent', failurePolicy: 'FailClosed', healthCheck: { type: 'Forwarding', periodSeconds: 1, failureThreshold: 2 } },
    ],
  },
};

/** `kubectl apply` of objects (YAML documents in a file of the lab's state directory). */
async function kubectlApply(lab: Lab, objects: object[]): Promise<void> {
  const file = join(lab.stateDir, 'service-chain-resilience.yaml');
  writeFileSync(file, objects.map((o) => stringifyYaml(o)).join('---\n'));
  await kubectl(lab, ['apply', '-f', file]);
}

function labelled(pod: V1Pod, labels: Record<string, string>): V1Pod {
  pod.metadata!.labels = labels;
  return pod;
}

async function chain(lab: Lab): Promise<ServiceChain> {
  return JSON.parse(await kubectl(lab, ['get', 'servicechain', CHAIN, '-o', 'json'])) as ServiceChain;
}

/** Replica health by pod name, from the chain's status. */
function replicaHealth(sc: ServiceChain): Record<string, boolean> {
  return Object.fromEntries((sc.status?.hops ?? []).flatMap((h) => (h.replicas ?? []).map((r) => [r.pod, r.healthy])));
}

function condition(sc: ServiceChain, type: string): { status?: string; reason?: string; message?: string } {
  return sc.status?.conditions?.find((c) => c.type === type) ?? {};
}

/** Waits for the chain to be Ready with every replica healthy; returns the replicas as status lists them. */
async function allHealthy(lab: Lab, timeoutMs = 90_000): Promise<string> {
  const sc = await eventually('chain Ready with 3/3 replicas healthy', async (saw) => {
    const s = await chain(lab);
    saw({ readyReplicas: s.status?.readyReplicas, conditions: s.status?.conditions?.map((c) => `${c.type}=${c.status} (${c.reason}: ${c.message})`) });
    return s.status?.readyReplicas === '3/3' && condition(s, 'Ready').status === 'True' ? s : undefined;
  }, timeoutMs, 500);
  return JSON.stringify(sc.status!.hops!.map((h) => ({ hop: h.name, replicas: (h.replicas ?? []).map((r) => ({ pod: r.pod, node: r.node, id: r.id })) })));
}

interface SeenEvent {
  reason: string;
  message: string;
  count: number;
}

/** The chain's Events by name (a repeat of the same Event bumps its count). */
async function chainEvents(lab: Lab): Promise<Map<string, SeenEvent>> {
  const list = await lab.core.listNamespacedEvent({ namespace: 'default' });
  return new Map(
    list.items
      .filter((e) => e.involvedObject.kind === 'ServiceChain' && e.involvedObject.name === CHAIN)
      .map((e) => [e.metadata!.name!, { reason: e.reason ?? '', message: e.message ?? '', count: e.count ?? 1 }]),
  );
}

/** Events recorded (or repeated) since `before` was taken. */
function newEvents(before: Map<string, SeenEvent>, now: Map<string, SeenEvent>): SeenEvent[] {
  return [...now].filter(([name, e]) => (before.get(name)?.count ?? 0) < e.count).map(([, e]) => e);
}

async function waitEvent(lab: Lab, before: Map<string, SeenEvent>, reason: string, pod: string, timeoutMs = 60_000): Promise<SeenEvent> {
  return eventually(`Event ${reason} about ${pod} on the chain`, async (saw) => {
    const fresh = newEvents(before, await chainEvents(lab));
    saw(fresh);
    return fresh.find((e) => e.reason === reason && e.message.includes(pod));
  }, timeoutMs, 500);
}

/** The source ports of the connections a filter replica has forwarded. */
async function seenPorts(lab: Lab, filter: V1Pod): Promise<Set<number>> {
  const out = JSON.parse(await podExec(lab, filter, ['nft', '-j', 'list', 'set', 'ip', 'cnf', 'seen'])) as { nftables: Array<{ set?: { elem?: unknown[] } }> };
  const ports = new Set<number>();
  const collect = (v: unknown): void => {
    if (typeof v === 'number') ports.add(v);
    else if (v && typeof v === 'object') for (const x of Object.values(v)) collect(x);
  };
  for (const o of out.nftables) collect(o.set?.elem);
  return ports;
}

async function serverCounters(lab: Lab, server: V1Pod): Promise<{ hopped: number; skipped: number }> {
  const packets = async (name: string): Promise<number> => {
    const out = JSON.parse(await podExec(lab, server, ['nft', '-j', 'list', 'counter', 'ip', 'srv', name])) as { nftables: Array<{ counter?: { packets: number } }> };
    return out.nftables.find((o) => o.counter)!.counter!.packets;
  };
  return { hopped: await packets('hopped'), skipped: await packets('skipped') };
}

async function connects(lab: Lab, from: V1Pod, ip: string, port: number): Promise<boolean> {
  return podExec(lab, from, ['nc', '-z', '-w', '3', ip, String(port)], 30_000).then(() => true, () => false);
}

async function setForwarding(lab: Lab, cnf: V1Pod, on: boolean): Promise<void> {
  await podExec(lab, cnf, ['sysctl', '-qw', `net.ipv4.ip_forward=${on ? 1 : 0}`]);
}

function agentLog(lab: Lab, node: number): string[] {
  return readFileSync(join(lab.nodes[node]!.dirs.logDir, 'seine-agent.log'), 'utf8').split('\n');
}

async function agentLogged(lab: Lab, node: number, fromLine: number, msg: string, timeoutMs = 60_000): Promise<void> {
  await eventually(`agent on node ${node} logs "${msg}"`, async () => (agentLog(lab, node).slice(fromLine).some((l) => l.includes(`"${msg}"`)) ? true : undefined), timeoutMs, 500);
}

/** Seconds of the run that carried no data (as iperf3 reports them). */
const idleSeconds = (intervals: IperfInterval[]): number[] => intervals.filter((i) => i.sum.bytes === 0).map((i) => Math.round(i.sum.start));

describe('service chains under failure (3 nodes)', () => {
  let lab: Lab;
  const pods: Record<string, V1Pod> = {};
  let serverIp: string;
  const running: IperfRun[] = [];
  const attempts: ConnectionAttempts[] = [];

  beforeAll(async () => {
    lab = await startTestLab({ nodes: 3 });
    const node = (i: number): string => lab.plan.nodes[i]!.name;
    const create = async (pod: V1Pod): Promise<void> => void (await lab.core.createNamespacedPod({ namespace: 'default', body: pod }));
    await kubectlApply(lab, [
      { apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name: NAD, namespace: 'default' }, spec: { config: JSON.stringify({ cniVersion: '1.0.0', type: 'seine', networkType: 'function' }) } },
      chainManifest,
    ]);
    const cnf = (name: string, n: number, role: string, script: string): V1Pod =>
      labelled(simplePod(name, { node: node(n), annotations: { 'k8s.v1.cni.cncf.io/networks': FUNCTION_PORTS }, command: ['sh', '-c', script] }), { cnf: role });
    await create(labelled(simplePod('client', { node: node(0) }), { role: 'client' }));
    await create(labelled(simplePod('server', { node: node(1), command: ['sh', '-c', SERVER_SCRIPT] }), { role: 'server' }));
    await create(cnf('filter-1', 1, 'filter', FILTER_SCRIPT));
    await create(cnf('filter-2', 2, 'filter', FILTER_SCRIPT));
    await create(cnf('marker-1', 2, 'marker', MARKER_SCRIPT));
    for (const name of ['client', 'server', 'filter-1', 'filter-2', 'marker-1']) pods[name] = await waitRunning(lab, name);
    serverIp = pods.server!.status!.podIP!;
    await allHealthy(lab);
    // The whole path works before anything breaks: both hops marked the packet.
    await eventually('a classified connection through both hops', async (saw) => {
      const ok = await connects(lab, pods.client!, serverIp, 80);
      const c = await serverCounters(lab, pods.server!);
      saw({ ok, ...c });
      return ok && c.hopped > 0 ? true : undefined;
    }, 60_000, 500);
  }, 300_000);

  afterEach(async () => {
    for (const a of attempts.splice(0)) await a.stop();
    for (const r of running.splice(0)) r.kill();
  });

  afterAll(async () => {
    await lab?.down();
  }, 120_000);

  /** A long iperf3 whose connections (control and data) all run through one filter replica; retried until so. */
  async function iperfThroughOneFilter(seconds: number): Promise<{ run: IperfRun; carrier: number }> {
    const filters = [pods['filter-1']!, pods['filter-2']!];
    for (let attempt = 1; ; attempt++) {
      const run = startIperf(lab, pods.client!, serverIp, seconds, STREAM_RATE);
      running.push(run);
      const ports = await eventually('the iperf3 control and data connections established', async (saw) => {
        const p = await connectionPorts(lab, pods.client!, 5201);
        saw(p);
        return p.length >= 2 ? p : undefined;
      }, 30_000, 200);
      await sleep(500);
      const seen = await Promise.all(filters.map((f) => seenPorts(lab, f)));
      const carrier = seen.findIndex((s, i) => ports.every((p) => s.has(p) && !seen[1 - i]!.has(p)));
      if (carrier >= 0) return { run, carrier };
      // The hash put them on different replicas: another run, other source ports.
      if (attempt >= 8) throw new Error(`8 iperf3 runs each spread over both filter replicas (ports ${ports.join(', ')}; filter-1 saw ${seen[0]!.size}, filter-2 ${seen[1]!.size} ports)`);
      run.kill();
      await run.done.catch(() => undefined);
      await sleep(1000);
    }
  }

  it('failover: a replica that stops forwarding leaves rotation, new connections go through the other, its connection keeps going; recovery brings it back', async () => {
    const filters = [pods['filter-1']!, pods['filter-2']!];
    const names = ['filter-1', 'filter-2'];
    const { run, carrier } = await iperfThroughOneFilter(20);
    const failed = 1 - carrier;
    // A 1 s connect timeout: a SYN retransmitted after a second would already take the surviving replica (an
    // unusable replica's connections move), hiding how long new connections were sent to the failed one.
    const conn = new ConnectionAttempts(lab, pods.client!, serverIp, 80, 250, 1).start();
    attempts.push(conn);
    await sleep(2000);
    const beforeFailure = await chainEvents(lab);
    const t0 = Date.now();
    await setForwarding(lab, filters[failed]!, false);
    let restored = false;
    try {
      await waitEvent(lab, beforeFailure, 'ReplicaUnhealthy', names[failed]!);
      const eventMs = Date.now() - t0;
      await eventually(`status: ${names[failed]} unhealthy`, async (saw) => {
        const h = replicaHealth(await chain(lab));
        saw(h);
        return h[names[failed]!] === false && h[names[carrier]!] === true ? true : undefined;
      }, 60_000, 500);
      const statusMs = Date.now() - t0;
      // Out of rotation everywhere: every new connection succeeds (through the surviving replica: FailClosed hop).
      await eventually('12 new classified connections in a row succeed', async (saw) => {
        saw(conn.attempts.slice(-12));
        return conn.lastSucceeded(12) ? true : undefined;
      }, 60_000, 250);
      await conn.stop();
      const after = conn.since(t0);
      const failures = after.filter((a) => !a.ok);
      const lastFailureMs = failures.length ? failures[failures.length - 1]!.at - t0 : 0;
      const { intervals, retransmits } = await run.done;
      // When the client's node (which picks the first hop's replica) changed its steering after the failure.
      const clientSteered = agentLog(lab, 0)
        .map((l) => (l.includes('"chain realized"') ? (JSON.parse(l) as { time: number }).time : 0))
        .find((t) => t >= t0);
      console.log(
        `failover of ${names[failed]}: Event ReplicaUnhealthy seen after ${eventMs} ms, status after ${statusMs} ms, the client's node steered around it after ${clientSteered ? `${clientSteered - t0} ms` : '(not logged)'}; ` +
          `${failures.length} of ${after.length} new connections started after the failure failed (started at ${failures.map((a) => a.at - t0).join(', ')} ms), the last one started ${lastFailureMs} ms after it; ` +
          `iperf3 through ${names[carrier]}: ${intervals.length} s, ${retransmits} retransmits, idle seconds [${idleSeconds(intervals).join(', ')}]`,
      );
      // The connection on the surviving replica never stalled and finished.
      expect(intervals.length).toBeGreaterThanOrEqual(19);
      expect(idleSeconds(intervals)).toEqual([]);
      const beforeRecovery = await chainEvents(lab);
      const seenBefore = await seenPorts(lab, filters[failed]!);
      await setForwarding(lab, filters[failed]!, true);
      restored = true;
      await waitEvent(lab, beforeRecovery, 'ReplicaHealthy', names[failed]!);
      await allHealthy(lab, 60_000);
      // Back in rotation: new connections reach the recovered replica again.
      await eventually(`a new connection through ${names[failed]}`, async (saw) => {
        await connects(lab, pods.client!, serverIp, 80);
        const now = await seenPorts(lab, filters[failed]!);
        saw({ before: seenBefore.size, now: now.size });
        return [...now].some((p) => !seenBefore.has(p)) ? true : undefined;
      }, 60_000, 200);
    } finally {
      if (!restored) await setForwarding(lab, filters[failed]!, true);
    }
  }, 240_000);

  it('a hop left without healthy replicas: FailClosed drops classified connections (others pass), FailOpen skips the hop', async () => {
    const filters = [pods['filter-1']!, pods['filter-2']!];
    const policy = (value: string): Promise<string> => kubectl(lab, ['patch', 'servicechain', CHAIN, '--type=json', '-p', JSON.stringify([{ op: 'replace', path: '/spec/hops/0/failurePolicy', value }])]);
    for (const f of filters) await setForwarding(lab, f, false);
    try {
      await eventually('both filter replicas unhealthy, the chain not Ready (HopUnavailable)', async (saw) => {
        const sc = await chain(lab);
        const h = replicaHealth(sc);
        saw({ h, ready: condition(sc, 'Ready'), degraded: condition(sc, 'Degraded') });
        return !h['filter-1'] && !h['filter-2'] && condition(sc, 'Ready').reason === 'HopUnavailable' && condition(sc, 'Degraded').reason === 'NoHealthyReplica' ? true : undefined;
      }, 60_000, 500);
      // Every node learns it from the reports: then classified connections fail, all of them.
      await eventually('classified connections refused', async () => ((await connects(lab, pods.client!, serverIp, 80)) ? undefined : true), 60_000, 200);
      const closed = await serverCounters(lab, pods.server!);
      for (let i = 0; i < 3; i++) expect(await connects(lab, pods.client!, serverIp, 80)).toBe(false);
      for (let i = 0; i < 3; i++) expect(await connects(lab, pods.client!, serverIp, 81)).toBe(true);
      expect(await serverCounters(lab, pods.server!)).toEqual(closed);

      await policy('FailOpen');
      const open = await eventually('classified connections pass, skipping the filter hop (DSCP 40)', async (saw) => {
        const ok = await connects(lab, pods.client!, serverIp, 80);
        const c = await serverCounters(lab, pods.server!);
        saw({ ok, ...c });
        return ok && c.skipped > closed.skipped ? c : undefined;
      }, 60_000, 200);
      for (let i = 0; i < 3; i++) expect(await connects(lab, pods.client!, serverIp, 80)).toBe(true);
      const end = await serverCounters(lab, pods.server!);
      // The marker saw DSCP 0 (nothing from the filter) and the filter hop stayed dark.
      expect(end.skipped).toBeGreaterThanOrEqual(open.skipped + 3);
      expect(end.hopped).toBe(closed.hopped);
      await eventually('the chain Ready again (FailOpen), Degraded saying the hop is skipped', async (saw) => {
        const sc = await chain(lab);
        saw({ ready: condition(sc, 'Ready'), degraded: condition(sc, 'Degraded') });
        return condition(sc, 'Ready').status === 'True' && /filter: .*skips the hop/.test(condition(sc, 'Degraded').message ?? '') ? true : undefined;
      }, 60_000, 500);
    } finally {
      await policy('FailClosed');
      for (const f of filters) await setForwarding(lab, f, true);
    }
    await allHealthy(lab, 60_000);
    const back = await serverCounters(lab, pods.server!);
    await eventually('classified connections through both hops again (DSCP 24)', async (saw) => {
      const ok = await connects(lab, pods.client!, serverIp, 80);
      const c = await serverCounters(lab, pods.server!);
      saw({ ok, ...c });
      return ok && c.hopped > back.hopped ? true : undefined;
    }, 60_000, 200);
  }, 240_000);

  it('kill -9 of the agents on a replica\'s node and on the client\'s node: the chained connection survives, the chain keeps its replicas', async () => {
    const replicas = await allHealthy(lab);
    const beforeKill = await chainEvents(lab);
    const run = startIperf(lab, pods.client!, serverIp, 15, STREAM_RATE);
    running.push(run);
    await eventually('the iperf3 connections established', async () => ((await connectionPorts(lab, pods.client!, 5201)).length >= 2 ? true : undefined), 30_000, 200);
    await sleep(2000);
    const killed = [2, 0].map((i) => ({ i, agent: lab.agents.get(lab.plan.nodes[i]!.name)!, line: agentLog(lab, i).length }));
    const pids = killed.map((k) => k.agent.pid);
    const t0 = Date.now();
    for (const k of killed) k.agent.crash();
    for (const k of killed) await agentLogged(lab, k.i, k.line, 'agent ready');
    const readyMs = Date.now() - t0;
    killed.forEach((k, i) => expect(k.agent.pid).not.toBe(pids[i]));
    const { intervals, retransmits } = await run.done;
    console.log(`agent kill -9 on ${killed.map((k) => lab.plan.nodes[k.i]!.name).join(' and ')}: both ready again after ${readyMs} ms; iperf3 ${intervals.length} s, ${retransmits} retransmits, idle seconds [${idleSeconds(intervals).join(', ')}]`);
    expect(intervals.length).toBeGreaterThanOrEqual(14);
    expect(idleSeconds(intervals)).toEqual([]);
    expect(await allHealthy(lab)).toEqual(replicas);
    // No replica left rotation on the way: the restarted agents carried on with what their nodes had reported.
    expect(newEvents(beforeKill, await chainEvents(lab)).filter((e) => e.reason === 'ReplicaUnhealthy')).toEqual([]);
    const before = await serverCounters(lab, pods.server!);
    expect(await connects(lab, pods.client!, serverIp, 80)).toBe(true);
    expect((await serverCounters(lab, pods.server!)).hopped).toBeGreaterThan(before.hopped);
  }, 180_000);

  it('ovs-vswitchd restart on the node of the marker and a filter: flows are restored, the chained connection survives, the counters do not go back', async () => {
    // Every chained connection passes the marker (node 2), whichever filter it uses.
    const replicas = await allHealthy(lab);
    const beforeRestart = await chainEvents(lab);
    const line = agentLog(lab, 2).length;
    // Long enough that TCP's retransmission backoff after the outage still ends inside the run on a busy machine.
    const run = startIperf(lab, pods.client!, serverIp, 30, STREAM_RATE);
    running.push(run);
    await eventually('the iperf3 connections established', async () => ((await connectionPorts(lab, pods.client!, 5201)).length >= 2 ? true : undefined), 30_000, 200);
    await sleep(2000);
    // The marker's counters (its flows live on the restarted node) as the status shows them, every second.
    const markerPackets = async (): Promise<number> => (await chain(lab)).status?.hops?.find((h) => h.name === 'marker')?.replicas?.[0]?.packets?.forward ?? 0;
    const samples = [await markerPackets()];
    let sampling = true;
    const sampler = (async () => {
      // Bounded, so that a failure elsewhere in the test does not leave it running.
      for (let i = 0; sampling && i < 150; i++) {
        await sleep(1000);
        samples.push(await markerPackets().catch(() => samples[samples.length - 1]!));
      }
    })();
    const t0 = Date.now();
    await lab.nodes[2]!.ovs.restartVswitchd({ flowRestoreWait: true });
    await agentLogged(lab, 2, line, 'datapath restored');
    const restoredMs = Date.now() - t0;
    const { intervals, retransmits } = await run.done.catch(async (e: Error) => {
      // A stalled connection keeps retransmitting: say where its packets go.
      throw new Error(`${e.message}\n${await datapathDiagnosis(lab, { conntrackFilter: 'dport=5201' })}`);
    });
    // The status is written at most every 10 s: wait for one that counts traffic after the restart.
    await eventually('the marker\'s counters move past their value before the restart', async () => ((await markerPackets()) > samples[0]! ? true : undefined), 60_000, 1000);
    sampling = false;
    await sampler;
    const events = newEvents(beforeRestart, await chainEvents(lab)).map((e) => `${e.reason}: ${e.message}`);
    console.log(
      `ovs-vswitchd restart on ${lab.plan.nodes[2]!.name}: datapath restored after ${restoredMs} ms; iperf3 ${intervals.length} s, ${retransmits} retransmits, ` +
        `idle seconds [${idleSeconds(intervals).join(', ')}]; chain Events meanwhile: ${events.length ? events.join(' | ') : 'none'}`,
    );
    // The flows restarted counting from zero; the counters did not.
    expect(samples.filter((n, i) => i > 0 && n < samples[i - 1]!)).toEqual([]);
    // The same TCP connection finished its 30 s and carried data again at the end.
    expect(intervals.length).toBeGreaterThanOrEqual(29);
    expect(intervals.slice(-3).every((i) => i.sum.bytes > 0)).toBe(true);
    expect(await allHealthy(lab)).toEqual(replicas);
    const before = await serverCounters(lab, pods.server!);
    await eventually('a new classified connection through both hops', async () => ((await connects(lab, pods.client!, serverIp, 80)) ? true : undefined), 30_000, 200);
    expect((await serverCounters(lab, pods.server!)).hopped).toBeGreaterThan(before.hopped);
  }, 180_000);
});
