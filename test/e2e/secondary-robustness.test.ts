// Secondary networks under bad input and failures, on a 3-node lab (the lab's kubelet runs the CNI as
// containerd would, and retries a failed sandbox with backoff up to 20 s):
//  - every bad annotation or NAD leaves the pod not Running with an Event naming the problem, and nothing of
//    the pod on its node: no secondary or primary OVS port, no veth, no IPPool address, no node IPAM entry;
//  - an agent crash keeps secondary traffic flowing; afterwards hot-plug, network-status and DEL still work;
//  - deleting a NAD in use breaks nothing, and the pods' teardown still frees everything;
//  - a pod deleted while its agent is down: its secondary addresses and ports go when the agent returns;
//  - a sandbox re-made at the same path after a DEL lost to a killed agent: the runtime's retried ADD (same
//    container id and netns path) gets every interface back, network-status and the pools follow.
import { CustomObjectsApi, type V1Pod } from '@kubernetes/client-node';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { CommandError, run } from '../../src/host/exec.js';
import { createNetns, deleteNetns } from '../../src/host/netns.js';
import { MERGE_PATCH } from '../../src/k8s/api.js';
import type { Lab } from '../../src/lab/lab.js';
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION, type NetworkStatus } from '../../src/secondary/annotations/index.js';
import { eventually, kubectl, podExec, podNetns, simplePod, startTestLab, waitRunning } from '../harness/lab.js';
import { agentLogLines, agentReadyAfter, cniCall, labSandboxId, podArgs } from '../primary/agent/node-probe.js';

const EXAMPLES = join(process.cwd(), 'manifests', 'examples', 'secondary-networks.yaml');
const NS = 'default';

interface PoolAllocation {
  ip: string;
  owner: { podNamespace: string; podName: string; podUID?: string; containerID: string; interface: string; node?: string };
}
interface PoolObject {
  metadata: { name: string };
  status?: { allocations?: PoolAllocation[] };
}

/** The prefix of every host-side veth / OVS port of a pod (src/podif/interface.ts hostInterfaceName). */
function portPrefix(podName: string): string {
  return `${podName.toLowerCase().replace(/[^a-z0-9]/g, '').slice(0, 6) || 'pod'}-`;
}

function status(pod: V1Pod): NetworkStatus[] {
  const raw = pod.metadata?.annotations?.[NETWORK_STATUS_ANNOTATION];
  return raw ? (JSON.parse(raw) as NetworkStatus[]) : [];
}

async function addrOf(lab: Lab, pod: V1Pod, ifname: string): Promise<{ ip?: string; mac?: string } | undefined> {
  try {
    const [l] = JSON.parse(await podExec(lab, pod, ['ip', '-json', 'addr', 'show', 'dev', ifname])) as Array<{ address: string; addr_info: Array<{ family: string; local: string }> }>;
    return l ? { ip: l.addr_info.find((a) => a.family === 'inet')?.local, mac: l.address } : undefined;
  } catch {
    return undefined; // no such device
  }
}

/** `count` pings at `interval` s; how many came back (ping exits 1 when none did). */
async function pingStats(lab: Lab, from: V1Pod, ip: string, count: number, interval = '0.1'): Promise<{ sent: number; received: number; out: string }> {
  let out: string;
  try {
    out = await podExec(lab, from, ['ping', '-c', String(count), '-i', interval, '-W', '1', ip], count * Number(interval) * 1000 + 20_000);
  } catch (e) {
    out = e instanceof CommandError ? e.stdout : '';
  }
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0), out };
}

async function pings(lab: Lab, from: V1Pod, ip: string): Promise<boolean> {
  const s = await pingStats(lab, from, ip, 3, '0.2');
  expect(s.out).not.toMatch(/DUP!/);
  return s.received > 0;
}

function logLines(lab: Lab, node: number): string[] {
  const log = join(lab.nodes[node]!.dirs.logDir, 'seine-agent.log');
  return existsSync(log) ? readFileSync(log, 'utf8').split('\n') : [];
}

async function agentReady(lab: Lab, node: number, afterLines: number): Promise<void> {
  await eventually(`agent of node ${node} ready`, async () => (logLines(lab, node).slice(afterLines).some((l) => l.includes('"agent ready"')) ? true : undefined), 60_000);
}

describe('secondary networks: bad input, restarts and deletions leave a consistent node (3 nodes)', () => {
  let lab: Lab;
  let custom: CustomObjectsApi;

  const nodeName = (i: number): string => lab.plan.nodes[i]!.name;
  const create = async (name: string, node: number, networks: string): Promise<V1Pod> =>
    lab.core.createNamespacedPod({ namespace: NS, body: simplePod(name, { node: nodeName(node), annotations: { [NETWORKS_ANNOTATION]: networks } }) });
  const read = (name: string): Promise<V1Pod> => lab.core.readNamespacedPod({ name, namespace: NS });
  const annotate = (name: string, networks: string): Promise<V1Pod> =>
    lab.core.patchNamespacedPod({ name, namespace: NS, body: { metadata: { annotations: { [NETWORKS_ANNOTATION]: networks } } } }, MERGE_PATCH);
  const deletePod = async (pod: V1Pod): Promise<void> => {
    await lab.core.deleteNamespacedPod({ name: pod.metadata!.name!, namespace: NS });
    await eventually(`pod ${pod.metadata!.name} gone`, async () => {
      try {
        const p = await read(pod.metadata!.name!);
        return p.metadata?.uid === pod.metadata?.uid ? undefined : true;
      } catch {
        return true;
      }
    }, 60_000);
  };

  const createNad = (name: string, config: object): Promise<unknown> =>
    custom.createNamespacedCustomObject({ group: 'k8s.cni.cncf.io', version: 'v1', plural: 'network-attachment-definitions', namespace: NS, body: { apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name, namespace: NS }, spec: { config: JSON.stringify(config) } } });
  const deleteNad = (name: string): Promise<unknown> => custom.deleteNamespacedCustomObject({ group: 'k8s.cni.cncf.io', version: 'v1', plural: 'network-attachment-definitions', namespace: NS, name });
  const createPool = (name: string, spec: object): Promise<unknown> =>
    custom.createClusterCustomObject({ group: 'crd.seine.dev', version: 'v1alpha1', plural: 'ippools', body: { apiVersion: 'crd.seine.dev/v1alpha1', kind: 'IPPool', metadata: { name }, spec } });
  const pools = async (): Promise<PoolObject[]> => ((await custom.listClusterCustomObject({ group: 'crd.seine.dev', version: 'v1alpha1', plural: 'ippools' })) as { items: PoolObject[] }).items;
  /** "pool ip interface" of every address the pod holds, in any pool. */
  const poolHoldings = async (pod: V1Pod): Promise<string[]> =>
    (await pools()).flatMap((p) =>
      (p.status?.allocations ?? [])
        .filter((a) => a.owner.podUID === pod.metadata!.uid || (a.owner.podNamespace === NS && a.owner.podName === pod.metadata!.name))
        .map((a) => `${p.metadata.name} ${a.ip} ${a.owner.interface}`),
    );

  /** Every OVS port of the node (any bridge: br-int, br-vlan, br-ovl-*) as "bridge/port". */
  const ovsPorts = async (node: number): Promise<string[]> => {
    const ovs = lab.nodes[node]!.ovs;
    const out: string[] = [];
    for (const br of (await ovs.vsctl(['list-br'])).split('\n').filter(Boolean)) {
      for (const p of (await ovs.vsctl(['list-ports', br])).split('\n').filter(Boolean)) out.push(`${br}/${p}`);
    }
    return out;
  };
  const veths = async (node: number): Promise<string[]> => {
    // sysfs under nsenter --net is the root namespace's: ask iproute2.
    const { stdout } = await run('ip', ['-json', 'link', 'show', 'type', 'veth'], { netns: lab.nodes[node]!.netns });
    return (JSON.parse(stdout || '[]') as Array<{ ifname: string }>).map((l) => l.ifname);
  };

  /**
   * What the pod has left on its node: OVS ports on any bridge, host veths, pool addresses, node IPAM entries,
   * interfaces besides lo in its network namespace (absent between the kubelet's retries). Empty when clean.
   */
  const leftovers = async (pod: V1Pod, node: number): Promise<string[]> => {
    const prefix = portPrefix(pod.metadata!.name!);
    const uid = pod.metadata!.uid!;
    const out: string[] = [];
    out.push(...(await ovsPorts(node)).filter((p) => p.split('/')[1]!.startsWith(prefix)).map((p) => `OVS port ${p}`));
    out.push(...(await veths(node)).filter((v) => v.startsWith(prefix)).map((v) => `veth ${v}`));
    out.push(...(await poolHoldings(pod)).map((h) => `pool address ${h}`));
    const ipamFile = join(lab.nodes[node]!.dirs.stateDir, 'ipam-ipv4.json');
    if (existsSync(ipamFile)) {
      const ipam = JSON.parse(readFileSync(ipamFile, 'utf8')) as { allocations: Array<{ ip: string; containerId: string; ifname: string }> };
      out.push(...ipam.allocations.filter((a) => a.containerId.includes(uid.replaceAll('-', ''))).map((a) => `node IPAM ${a.ip} ${a.ifname}`));
    }
    const netns = podNetns(lab, pod);
    if (existsSync(netns)) {
      const links = await run('ip', ['-json', 'link', 'show'], { netns }).then(
        (r) => (JSON.parse(r.stdout || '[]') as Array<{ ifname: string }>).map((l) => l.ifname),
        () => [] as string[],
      );
      out.push(...links.filter((l) => l !== 'lo').map((l) => `pod interface ${l}`));
    }
    return out;
  };
  const expectClean = async (pod: V1Pod, node: number): Promise<void> => {
    // A retry of the kubelet may be half-way when we look: nothing may be left between attempts.
    let last: string[] = [];
    await eventually(
      `nothing of ${pod.metadata!.name} left on node ${node}`,
      async () => {
        last = await leftovers(pod, node);
        return last.length ? undefined : true;
      },
      30_000,
    ).catch(() => {
      throw new Error(`left on node ${node} by ${pod.metadata!.name}: ${last.join(', ')}`);
    });
  };

  const podEvents = async (pod: V1Pod): Promise<Array<{ reason: string; message: string; component: string }>> =>
    (await lab.core.listNamespacedEvent({ namespace: NS })).items
      .filter((e) => e.involvedObject.uid === pod.metadata!.uid)
      .map((e) => ({ reason: e.reason ?? '', message: e.message ?? '', component: e.source?.component ?? '' }));
  /** Waits for the agent's Warning Event on the pod with `reason`, whose message matches `message`. */
  const refusal = (pod: V1Pod, reason: string, message: RegExp): Promise<string> =>
    eventually(
      `${reason} Event on ${pod.metadata!.name}`,
      async () => (await podEvents(pod)).find((e) => e.component === 'seine-agent' && e.reason === reason && message.test(e.message))?.message,
      30_000,
    ).catch(async (e: unknown) => {
      throw new Error(`${String(e)}; events: ${JSON.stringify(await podEvents(pod))}`);
    });
  const expectNotRunning = async (pod: V1Pod): Promise<void> => {
    const p = await read(pod.metadata!.name!);
    expect(p.status?.phase ?? 'Pending').not.toBe('Running');
    expect(p.status?.podIP).toBeUndefined();
  };

  beforeAll(async () => {
    lab = await startTestLab({ nodes: 3 });
    custom = lab.kubeConfig.makeApiClient(CustomObjectsApi);
    await kubectl(lab, ['apply', '-f', EXAMPLES]);
  }, 180_000);
  afterAll(async () => {
    await lab?.down();
  }, 120_000);

  describe('bad annotations and NADs: a clear Event, the pod not Running, nothing left behind', () => {
    const cases: Array<{ title: string; pod: string; node: number; networks: string; reason: string; message: RegExp }> = [
      { title: 'broken JSON', pod: 'bjson', node: 0, networks: '[{"name":"vlan100"', reason: 'InvalidNetworksAnnotation', message: /networks annotation: not valid JSON/ },
      {
        title: 'a multicast MAC',
        pod: 'badmac',
        node: 1,
        networks: JSON.stringify([{ name: 'vlan100', mac: '03:00:00:00:00:01' }]),
        reason: 'InvalidNetworksAnnotation',
        message: /element 1 \("default\/vlan100"\): mac: "03:00:00:00:00:01" is not a unicast MAC address/,
      },
      { title: 'a malformed MAC', pod: 'zzmac', node: 2, networks: JSON.stringify([{ name: 'blue', mac: 'zz:00:00:00:00:01' }]), reason: 'InvalidNetworksAnnotation', message: /element 1 \("default\/blue"\): mac: "zz:00:00:00:00:01"/ },
      {
        title: 'duplicate interface names',
        pod: 'dupif',
        node: 0,
        networks: 'vlan100@data0,blue@data0',
        reason: 'InvalidNetworksAnnotation',
        message: /element 2 \("default\/blue"\): interface: "data0" is already used by element 1/,
      },
      { title: "the default network's interface name", pod: 'eth0if', node: 1, networks: 'vlan100@eth0', reason: 'InvalidNetworksAnnotation', message: /interface: "eth0" is the default network's interface/ },
      {
        title: 'a NAD with vlan 4095 (invalid NAD config)',
        pod: 'v4095p',
        node: 2,
        networks: 'vlan4095',
        reason: 'NetworkAttachmentFailed',
        message: /attaching default\/vlan4095 as net1: NetworkAttachmentDefinition default\/vlan4095: invalid spec\.config: vlan: 4095 must be <= 4094/,
      },
      {
        title: 'an ips address outside the pool',
        pod: 'outip',
        node: 0,
        networks: JSON.stringify([{ name: 'vlan100', ips: ['10.99.0.5/24'] }]),
        reason: 'NetworkAttachmentFailed',
        message: /attaching default\/vlan100 as net1: requested IP address 10\.99\.0\.5 is not in IP pool vlan100/,
      },
      {
        title: 'a third attachment failing after two succeeded (all rolled back)',
        pod: 'halfok',
        node: 1,
        networks: 'vlan100,blue,doesnotexist',
        reason: 'NetworkAttachmentFailed',
        message: /attaching default\/doesnotexist as net3: NetworkAttachmentDefinition default\/doesnotexist not found/,
      },
    ];
    const made = new Map<string, V1Pod>();

    beforeAll(async () => {
      await createNad('vlan4095', { cniVersion: '1.0.0', type: 'seine', networkType: 'vlan', vlan: 4095, ipam: { type: 'seine', ippools: ['vlan100'] } });
      // All at once: each fails on its own, and the kubelet keeps retrying them meanwhile.
      for (const c of cases) made.set(c.pod, await create(c.pod, c.node, c.networks));
    }, 60_000);
    afterAll(async () => {
      // Deleting pods that never started frees nothing twice and leaves nothing either.
      await Promise.all([...made.values()].map((p) => deletePod(p)));
      for (const c of cases) expect(await leftovers(made.get(c.pod)!, c.node)).toEqual([]);
    }, 90_000);

    for (const c of cases) {
      it(c.title, async () => {
        const pod = made.get(c.pod)!;
        await refusal(pod, c.reason, c.message);
        await expectNotRunning(pod);
        await expectClean(pod, c.node);
        if (c.pod === 'halfok') {
          // The first two attachments were made (ports on br-vlan and br-ovl-5001), then rolled back.
          const lines = logLines(lab, c.node).filter((l) => l.includes(`"port":"${portPrefix(c.pod)}`));
          expect(lines.filter((l) => l.includes('"msg":"attached"')).map((l) => (JSON.parse(l) as { bridge: string }).bridge)).toEqual(expect.arrayContaining(['br-vlan', 'br-ovl-5001']));
          expect(lines.filter((l) => l.includes('"msg":"detached"')).length).toBeGreaterThanOrEqual(2);
        }
        await expectNotRunning(pod);
      }, 60_000);
    }
  });

  it('an unknown network fails the pod until its NAD is created, then the pod starts', async () => {
    const pod = await create('latepod', 2, 'latecomer@lc0');
    await refusal(pod, 'NetworkAttachmentFailed', /attaching default\/latecomer as lc0: NetworkAttachmentDefinition default\/latecomer not found/);
    await expectNotRunning(pod);
    await expectClean(pod, 2);
    await createNad('latecomer', { cniVersion: '1.0.0', type: 'seine', networkType: 'vlan', vlan: 100, ipam: { type: 'seine', ippools: ['vlan100'] } });
    // The kubelet's backoff is at most 20 s.
    const running = await waitRunning(lab, 'latepod', NS, 45_000);
    const lc0 = await addrOf(lab, running, 'lc0');
    expect(lc0?.ip).toMatch(/^10\.100\.0\./);
    const st = await eventually('network-status of latepod', async () => {
      const s = status(await read('latepod'));
      return s.length === 2 ? s : undefined;
    });
    expect(st[1]).toMatchObject({ name: 'default/latecomer', interface: 'lc0', ips: [lc0!.ip], mac: lc0!.mac });
    expect(await poolHoldings(running)).toEqual([`vlan100 ${lc0!.ip} lc0`]);
    await deletePod(running);
    await expectClean(running, 2);
  }, 120_000);

  it('an exhausted pool fails the next pod (and nothing leaks); freeing an address lets it start', async () => {
    await createPool('tiny', { ipRanges: [{ start: '10.61.0.10', end: '10.61.0.11' }], subnetInfo: { gateway: '10.61.0.1', prefixLength: 24, vlan: 61 } });
    await createNad('tiny', { cniVersion: '1.0.0', type: 'seine', networkType: 'vlan', vlan: 61, ipam: { type: 'seine', ippools: ['tiny'] } });
    await create('tinya', 0, 'tiny');
    await create('tinyb', 1, 'tiny');
    const a = await waitRunning(lab, 'tinya', NS, 60_000);
    const b = await waitRunning(lab, 'tinyb', NS, 60_000);
    const c = await create('tinyc', 2, 'tiny');
    await refusal(c, 'NetworkAttachmentFailed', /attaching default\/tiny as net1: no free IP address in IP pool tiny: all 2 addresses of 10\.61\.0\.10\/31 are allocated/);
    await expectNotRunning(c);
    await expectClean(c, 2);
    const tiny = (await pools()).find((p) => p.metadata.name === 'tiny')!;
    expect(tiny.status!.allocations!.map((x) => [x.ip, x.owner.podName]).sort()).toEqual([
      [(await addrOf(lab, a, 'net1'))!.ip, 'tinya'],
      [(await addrOf(lab, b, 'net1'))!.ip, 'tinyb'],
    ].sort());
    // Exhaustion is transient (CNI code 11): once tinya is gone, the kubelet's retry gets its address.
    const freed = (await addrOf(lab, a, 'net1'))!.ip!;
    await deletePod(a);
    const cRunning = await waitRunning(lab, 'tinyc', NS, 45_000);
    expect((await addrOf(lab, cRunning, 'net1'))?.ip).toBe(freed);
    await Promise.all([deletePod(b), deletePod(cRunning)]);
    expect((await pools()).find((p) => p.metadata.name === 'tiny')!.status?.allocations ?? []).toEqual([]);
    await expectClean(a, 0);
    await expectClean(b, 1);
    await expectClean(cRunning, 2);
  }, 180_000);

  it('an agent crash: secondary traffic continues; afterwards hot-plug, network-status and DEL work', async () => {
    const networks = JSON.stringify([
      { name: 'vlan100', interface: 'data0' },
      { name: 'blue', interface: 'ovl0' },
    ]);
    await create('rsa', 0, networks);
    await create('rsb', 1, networks);
    let rsa = await waitRunning(lab, 'rsa', NS, 60_000);
    const rsb = await waitRunning(lab, 'rsb', NS, 60_000);
    const vlanIp = (await addrOf(lab, rsa, 'data0'))!.ip!;
    const blueIp = (await addrOf(lab, rsa, 'ovl0'))!.ip!;
    await eventually('VLAN path', async () => ((await pings(lab, rsb, vlanIp)) ? true : undefined), 15_000);
    await eventually('overlay path', async () => ((await pings(lab, rsb, blueIp)) ? true : undefined), 15_000);
    const statusBefore = await eventually('network-status of rsa', async () => {
      const s = status(await read('rsa'));
      return s.length === 3 ? s : undefined;
    });
    const holdingsBefore = await poolHoldings(rsa);
    expect(holdingsBefore.sort()).toEqual([`blue ${blueIp} ovl0`, `vlan100 ${vlanIp} data0`]);

    // 12 s of pings on both secondary interfaces while node 0's agent is killed and comes back.
    const lines = logLines(lab, 0).length;
    const vlanStream = pingStats(lab, rsb, vlanIp, 120);
    const blueStream = pingStats(lab, rsb, blueIp, 120);
    await new Promise((r) => setTimeout(r, 1500));
    const agent = lab.agents.get(nodeName(0))!;
    const oldPid = agent.pid;
    agent.crash();
    await agentReady(lab, 0, lines);
    expect(agent.pid).not.toBe(oldPid);
    const [vlanSeen, blueSeen] = await Promise.all([vlanStream, blueStream]);
    expect({ vlan: vlanSeen.received, blue: blueSeen.received }).toEqual({ vlan: vlanSeen.sent, blue: blueSeen.sent });
    expect(vlanSeen.sent).toBe(120);
    expect(await pings(lab, rsb, vlanIp)).toBe(true);
    expect(await pings(lab, rsb, blueIp)).toBe(true);

    // State as before: same addresses in the pools (the restarted agent's GC keeps live pods'), same status.
    await new Promise((r) => setTimeout(r, 2000));
    expect((await poolHoldings(rsa)).sort()).toEqual(holdingsBefore);
    expect(status(await read('rsa'))).toEqual(statusBefore);

    // Hot-plug on the pod created before the restart: add vlan200 as data1 ...
    const plus = JSON.stringify([{ name: 'vlan100', interface: 'data0' }, { name: 'blue', interface: 'ovl0' }, { name: 'vlan200', interface: 'data1' }]);
    await annotate('rsa', plus);
    const data1 = await eventually('data1 added to rsa', async () => (await addrOf(lab, rsa, 'data1'))?.ip, 20_000);
    expect(data1).toMatch(/^10\.200\.0\./);
    const withData1 = await eventually('network-status with data1', async () => {
      const s = status(await read('rsa'));
      return s.length === 4 ? s : undefined;
    });
    // ... the existing entries (eth0 included) unchanged, the new one as the interface really is.
    expect(withData1.slice(0, 3)).toEqual(statusBefore);
    expect(withData1[3]).toEqual({ name: 'default/vlan200', interface: 'data1', ips: [data1], mac: (await addrOf(lab, rsa, 'data1'))!.mac });
    expect((await poolHoldings(rsa)).sort()).toEqual([...holdingsBefore, `vlan200 ${data1} data1`].sort());
    // ... and remove blue: ovl0 goes, its address returns to the pool, VLAN traffic is untouched.
    await annotate('rsa', JSON.stringify([{ name: 'vlan100', interface: 'data0' }, { name: 'vlan200', interface: 'data1' }]));
    await eventually('ovl0 removed from rsa', async () => ((await addrOf(lab, rsa, 'ovl0')) === undefined ? true : undefined), 20_000);
    const withoutBlue = await eventually('network-status without ovl0', async () => {
      const s = status(await read('rsa'));
      return s.length === 3 ? s : undefined;
    });
    expect(withoutBlue.map((e) => e.interface)).toEqual(['eth0', 'data0', 'data1']);
    expect(withoutBlue[0]).toEqual(statusBefore[0]);
    expect((await poolHoldings(rsa)).sort()).toEqual([`vlan100 ${vlanIp} data0`, `vlan200 ${data1} data1`]);
    expect(await pings(lab, rsb, vlanIp)).toBe(true);

    // DEL after the restart: every address back, every port and veth gone.
    rsa = await read('rsa');
    await deletePod(rsa);
    await expectClean(rsa, 0);
    await deletePod(rsb);
    await expectClean(rsb, 1);
  }, 240_000);

  it('deleting a NAD in use: running pods keep their traffic; their teardown still frees everything', async () => {
    await createPool('green', { ipRanges: [{ cidr: '10.53.0.0/24' }], subnetInfo: { gateway: '10.53.0.1', prefixLength: 24 } });
    await createNad('green', { cniVersion: '1.0.0', type: 'seine', networkType: 'overlay', vni: 5003, mtu: 1400, ipam: { type: 'seine', ippools: ['green'] } });
    await create('nda', 1, 'green@g0');
    await create('ndb', 2, 'green@g0');
    const nda = await waitRunning(lab, 'nda', NS, 60_000);
    const ndb = await waitRunning(lab, 'ndb', NS, 60_000);
    const aIp = (await addrOf(lab, nda, 'g0'))!.ip!;
    const bIp = (await addrOf(lab, ndb, 'g0'))!.ip!;
    await eventually('green across nodes', async () => ((await pings(lab, ndb, aIp)) ? true : undefined), 15_000);

    const stream = pingStats(lab, ndb, aIp, 60);
    await new Promise((r) => setTimeout(r, 1000));
    await deleteNad('green');
    // Any pod update makes the agents look at the pods again (hot-plug path) without the NAD.
    await lab.core.patchNamespacedPod({ name: 'nda', namespace: NS, body: { metadata: { labels: { touched: 'yes' } } } }, MERGE_PATCH);
    const seen = await stream;
    expect(seen.received).toBe(seen.sent);
    expect(await pings(lab, nda, bIp)).toBe(true);
    expect((await addrOf(lab, nda, 'g0'))?.ip).toBe(aIp);

    // Hot-unplug of the deleted NAD's attachment works from what was recorded.
    await annotate('ndb', '');
    await eventually('g0 removed from ndb', async () => ((await addrOf(lab, ndb, 'g0')) === undefined ? true : undefined), 20_000);
    // The address goes back to the pool, then network-status is rewritten, right after the interface goes.
    await eventually('ndb address released and network-status rewritten', async () => {
      if ((await poolHoldings(ndb)).length) return undefined;
      return status(await read('ndb')).map((e) => e.interface).join() === 'eth0' ? true : undefined;
    }, 10_000);
    expect((await ovsPorts(2)).filter((p) => p.split('/')[1]!.startsWith(portPrefix('ndb')) && !p.startsWith('br-int/'))).toEqual([]);

    // Deleting the pod: address released, interface and port removed; node 1 stops advertising VNI 5003.
    await deletePod(nda);
    await expectClean(nda, 1);
    await eventually('node 1 no longer on VNI 5003', async () => {
      const vnis = (await lab.core.readNode({ name: nodeName(1) })).metadata?.annotations?.['seine.dev/overlay-vnis'] ?? '';
      return vnis.split(',').includes('5003') ? undefined : true;
    }, 20_000);
    await deletePod(ndb);
    await expectClean(ndb, 2);
    expect((await pools()).find((p) => p.metadata.name === 'green')!.status?.allocations ?? []).toEqual([]);
  }, 180_000);

  it('an annotation changed while the agent is down is applied when it returns', async () => {
    const node = 1;
    await create('downhp', node, 'vlan100@data0');
    const pod = await waitRunning(lab, 'downhp', NS, 60_000);
    const data0 = (await addrOf(lab, pod, 'data0'))!;
    const agent = lab.agents.get(nodeName(node))!;
    await agent.stop();
    await annotate('downhp', 'vlan100@data0,blue@ovl0');
    const lines = logLines(lab, node).length;
    agent.start();
    await agentReady(lab, node, lines);
    const ovl0 = await eventually('ovl0 added after the agent returned', async () => (await addrOf(lab, pod, 'ovl0'))?.ip, 30_000);
    const st = await eventually('network-status with ovl0', async () => {
      const s = status(await read('downhp'));
      return s.length === 3 ? s : undefined;
    });
    expect(st.map((e) => [e.name, e.interface, e.ips?.[0]])).toEqual([
      ['seine', 'eth0', pod.status!.podIP],
      ['default/vlan100', 'data0', data0.ip],
      ['default/blue', 'ovl0', ovl0],
    ]);
    expect((await poolHoldings(pod)).sort()).toEqual([`blue ${ovl0} ovl0`, `vlan100 ${data0.ip} data0`]);
    await deletePod(pod);
    await expectClean(pod, node);
  }, 150_000);

  it('a sandbox re-made at the same path after a DEL lost to kill -9: the retried ADD brings back every interface', async () => {
    const node = 0;
    const labNode = lab.nodes[node]!;
    const created = await create('remade', node, 'vlan100');
    const pod = await waitRunning(lab, 'remade', NS, 60_000);
    const uid = pod.metadata!.uid!;
    const before = (await addrOf(lab, pod, 'net1'))!;
    expect(await poolHoldings(created)).toEqual([`vlan100 ${before.ip} net1`]);
    // What the lab's kubelet (as containerd) passes for this sandbox, on every retry alike.
    const sandbox = { containerId: labSandboxId(uid), netns: podNetns(lab, pod), args: podArgs(NS, 'remade', uid, labSandboxId(uid)) };

    const agent = lab.agents.get(nodeName(node))!;
    agent.crash();
    await agent.stop(); // keep it down: the DEL must find no agent
    const lines = agentLogLines(labNode).length;
    try {
      expect((await cniCall(labNode, 'DEL', sandbox)).exitCode).toBe(0);
      await deleteNetns(basename(sandbox.netns));
      await createNetns(basename(sandbox.netns));
    } finally {
      agent.start();
    }
    await agentReadyAfter(labNode, lines);
    const add = await cniCall(labNode, 'ADD', sandbox);
    expect({ exitCode: add.exitCode, error: add.json?.msg as unknown }).toEqual({ exitCode: 0, error: undefined });
    const podIp = (add.json.ips[0].address as string).split('/')[0];

    // Every interface the pod asks for is in the new namespace; the pool holds exactly net1's address.
    const net1 = await addrOf(lab, pod, 'net1');
    expect(net1?.ip).toMatch(/^10\.100\.0\./);
    expect((await addrOf(lab, pod, 'eth0'))?.ip).toBe(podIp);
    expect(await poolHoldings(created)).toEqual([`vlan100 ${net1!.ip} net1`]);
    expect(status(await read('remade')).map((e) => [e.name, e.interface, e.ips?.[0], e.mac ?? ''])).toEqual([
      ['seine', 'eth0', podIp, expect.any(String)],
      ['default/vlan100', 'net1', net1!.ip, net1!.mac],
    ]);
    const ports = (await ovsPorts(node)).filter((p) => p.split('/')[1]!.startsWith(portPrefix('remade'))).map((p) => p.split('/')[0]);
    expect(ports.sort()).toEqual(['br-int', 'br-vlan']);

    await deletePod(await read('remade'));
    await expectClean(created, node);
  }, 180_000);

  it('a pod deleted while its agent is down: its secondary addresses and ports go when the agent returns', async () => {
    const node = 2;
    const gone = await create('gone', node, 'vlan100@data0,blue@ovl0');
    await waitRunning(lab, 'gone', NS, 60_000);
    const held = await poolHoldings(gone);
    expect(held).toHaveLength(2);
    const prefix = portPrefix('gone');
    expect((await ovsPorts(node)).filter((p) => p.split('/')[1]!.startsWith(prefix)).map((p) => p.split('/')[0]).sort()).toEqual(['br-int', 'br-ovl-5001', 'br-vlan']);

    const agent = lab.agents.get(nodeName(node))!;
    await agent.stop();
    // The kubelet's DEL finds no agent (the shim reports success): the sandbox goes, the pod leaves the API.
    await deletePod(gone);
    expect(existsSync(podNetns(lab, gone))).toBe(false);
    expect(await poolHoldings(gone)).toHaveLength(2);
    const lines = logLines(lab, node).length;
    const t0 = Date.now();
    agent.start();
    await agentReady(lab, node, lines);
    // Promptly, not after the pool GC's 60 s minimum age.
    await expectClean(gone, node);
    const tookMs = Date.now() - t0;
    expect(tookMs).toBeLessThan(30_000);
  }, 150_000);
});
