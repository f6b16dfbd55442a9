// The chain stage of a secondary network's bridge, with real packets on a real bridge (one node, no agent): a VLAN
// trunk bridge that switches with NORMAL, two VLAN networks with the same addresses, a chain on one of them.
import { run } from '../../../src/host/exec.js';
import { segmentSync } from '../../../src/chaining/datapath/flows.js';
import { chainingScope, CookieKind, decodeChainObject, segmentZone } from '../../../src/chaining/datapath/layout.js';
import type { DatapathChain } from '../../../src/chaining/datapath/state.js';
import { addFlow, decodeCookie, FlowWriter } from '../../../src/ovs/openflow/index.js';
import { OvsSandbox, type SandboxPod } from '../../harness/sandbox.js';
import { addCnf as addBridgeCnf, bridging, oneArmedRouting, replica, routing, rx, seen, tcp, watchPort, type Cnf } from './bridge-cnf.js';

const BR = 'br-vl';
/** An access VLAN no pod port uses: the CNFs' function ports are outside the networks NORMAL switches. */
const FUNCTION_VLAN = 999;

describe('service chain steering on a VLAN trunk bridge', () => {
  let sb: OvsSandbox;
  let w: FlowWriter;
  const pods: Record<string, SandboxPod & { ofport: number; vlan: number }> = {};
  const zone100 = segmentZone({ networkType: 'vlan', vlan: 100 });
  const zone200 = segmentZone({ networkType: 'vlan', vlan: 200 });

  async function addPod(key: string, cidr: string, vlan: number, ofport: number): Promise<void> {
    const p = await sb.addPod(cidr);
    await sb.ovs.vsctl(['add-port', BR, p.hostIf, 'tag=' + vlan, '--', 'set', 'interface', p.hostIf, `ofport_request=${ofport}`]);
    pods[key] = { ...p, ofport, vlan };
  }

  const addCnf = async (name: string, ifnames: string[], firstOfport: number): Promise<Cnf> => {
    const cnf = await addBridgeCnf(sb, BR, name, ifnames, firstOfport, FUNCTION_VLAN);
    // As the secondary datapath does for function ports: nothing they send reaches NORMAL.
    await w.submit(cnf.ports.map((p) => addFlow({ table: 0, priority: 100, match: { in_port: p.ofport }, actions: [] })));
    return cnf;
  };

  beforeAll(async () => {
    sb = await OvsSandbox.start();
    await sb.addBridge(BR);
    w = FlowWriter.forBridge(sb.ovs, BR);
    // The trunk bridge's own switching, as the secondary datapath installs it on a bridge with function ports.
    await w.submit([addFlow({ table: 0, priority: 0, actions: [{ type: 'output', port: 'NORMAL' }] })]);
    // Two VLAN networks with the same addresses: only VLAN 100 has the chain.
    await addPod('client', '10.30.0.2/24', 100, 2);
    await addPod('server', '10.30.0.3/24', 100, 3);
    await addPod('client200', '10.30.0.2/24', 200, 4);
    await addPod('server200', '10.30.0.3/24', 200, 5);
  }, 60_000);

  afterAll(async () => {
    await sb?.close();
  });

  it('steers classified TCP through three hops on its network only; port 81 and the other VLAN are switched as before', async () => {
    const bridged = await bridging(await addCnf('t', ['in0', 'out0'], 10));
    const routed = await routing(await addCnf('r', ['in0', 'out0'], 20));
    const oneArmed = await oneArmedRouting(await addCnf('o', ['eth1'], 30));
    const { client, server, client200, server200 } = pods as Required<typeof pods>;
    const chain: DatapathChain = {
      index: 7,
      precedence: 0,
      symmetric: true,
      classifier: { source: [`${client!.addr}/32`], destination: [`${server!.addr}/32`], protocol: 'TCP', ports: [{ port: 80 }] },
      hops: [
        { mode: 'Transparent', failurePolicy: 'FailClosed', replicas: [replica(1, bridged)] },
        { mode: 'Routed', failurePolicy: 'FailClosed', replicas: [replica(1, routed)] },
        { mode: 'Routed', failurePolicy: 'FailClosed', replicas: [replica(3, oneArmed)] },
      ],
      segment: {
        zone: zone100,
        endpoints: [client!, server!].map((p) => ({ ip: p.addr, mac: p.mac, ofport: p.ofport })),
      },
    };
    const hooks = [
      { zone: zone100, podOfports: [client!.ofport, server!.ofport] },
      // VLAN 200 has a chain elsewhere on the bridge (none here): its pods' packets pass the stage and must not be classified into VLAN 100's chain.
      { zone: zone200, podOfports: [client200!.ofport, server200!.ofport] },
    ];
    await w.sync(segmentSync({ round: 1, tunnelOfport: 0 }, hooks, [chain]));

    const before = { t: await rx(bridged, 'in0'), r: await rx(routed, 'in0'), o: await rx(oneArmed, 'eth1'), tOut: await rx(bridged, 'out0') };
    const first = await tcp(client!, server!, 80);
    if (first !== 'hello' && process.env.CHAIN_DEBUG) console.log((await run('ovs-ofctl', ['-O', 'OpenFlow15', 'dump-flows', w.ofctl.target])).stdout);
    expect(first).toBe('hello');
    const after = { t: await rx(bridged, 'in0'), r: await rx(routed, 'in0'), o: await rx(oneArmed, 'eth1'), tOut: await rx(bridged, 'out0') };
    // Forward packets entered every hop; replies came back into the Transparent hop's egress.
    expect({ t: after.t > before.t, r: after.r > before.r, o: after.o > before.o, tOut: after.tOut > before.tOut }).toEqual({ t: true, r: true, o: true, tOut: true });

    // Port 81 on VLAN 100, and port 80 between the same addresses on VLAN 200: no CNF sees them, and they work.
    await watchPort(bridged, 'bridge', 80);
    await watchPort(routed, 'ip', 81);
    expect(await tcp(client!, server!, 81)).toBe('hello');
    expect(await tcp(client200!, server200!, 80)).toBe('hello');
    expect([await seen(bridged, 'bridge'), await seen(routed, 'ip')]).toEqual([0, 0]);

    // Counters by cookie: every replica delivered in both directions; the chain's entry counted.
    const flows = await w.dumpFlows({ cookie: chainingScope() }, { fresh: true });
    const count = (kind: number, hop: number, dir: number): number =>
      flows
        .filter((f) => {
          const o = decodeChainObject(decodeCookie(f.cookie).object);
          return o.kind === kind && (kind !== CookieKind.deliver || (o.hop === hop && o.direction === dir));
        })
        .reduce((s, f) => s + Number(f.nPackets), 0);
    expect([0, 1, 2].map((hop) => [count(CookieKind.deliver, hop, 0) > 0, count(CookieKind.deliver, hop, 1) > 0])).toEqual([[true, true], [true, true], [true, true]]);
    expect(count(CookieKind.entry, 0, 0)).toBeGreaterThan(0);

    // With a chain tunnel (replicas and pods on other nodes), OVS takes the whole stage too.
    await sb.ovs.vsctl(['add-port', BR, 'sctest', '--', 'set', 'interface', 'sctest', 'type=vxlan', 'options:remote_ip=flow', 'options:key=flow', 'options:dst_port=4899', 'ofport_request=40']);
    const remote: DatapathChain = {
      ...chain,
      hops: chain.hops.map((h) => ({ ...h, replicas: [...h.replicas, { id: 9, nodeIp: '192.168.0.2', usable: true }] })),
      segment: { ...chain.segment!, endpoints: [...chain.segment!.endpoints, { ip: '10.30.0.9', mac: '02:00:00:00:09:01', nodeIp: '192.168.0.2' }] },
    };
    const installed = await w.sync(segmentSync({ round: 1, tunnelOfport: 40 }, hooks, [remote]));
    expect(installed.added).toBeGreaterThan(0);

    // Without the chain the stage is gone and the network is switched as before.
    await w.sync({ cookie: chainingScope(), flows: [] });
    expect(await tcp(client!, server!, 80)).toBe('hello');
  }, 120_000);
});
