// The chain stage's flows on a real bridge with real packets (one node, no agent): order of hops, Routed TTL,
// one-armed CNFs, unclassified traffic untouched, replies through the same replicas, failure policies.
import { run } from '../../../src/host/exec.js';
import { IpBatch } from '../../../src/host/ip.js';
import { addFlow, FlowWriter } from '../../../src/ovs/openflow/index.js';
import { pipelineFlows, type NodeConfig } from '../../../src/primary/pipeline/index.js';
import { chainingSync } from '../../../src/chaining/datapath/flows.js';
import { decodeChainObject, CookieKind, chainingScope } from '../../../src/chaining/datapath/layout.js';
import type { DatapathChain } from '../../../src/chaining/datapath/state.js';
import { decodeCookie } from '../../../src/ovs/openflow/cookie.js';
import { eventually } from '../../../src/util/wait.js';
import { OvsSandbox, SANDBOX_NODE, type SandboxPod } from '../../harness/sandbox.js';
import { OfConnection } from '../../../src/ovs/openflow/wire/connection.js';
import { ForwardingProber, probeDestinationMac, probeKey } from '../../../src/chaining/agent/probe.js';
import { addCnf as addBridgeCnf, bridging, oneArmedRouting, replica, routing, rx, seen, tcp as tcpTo, watchPort, type Cnf } from './bridge-cnf.js';

const BR = 'br-int';
const GW = 1;
const CLIENT = 2;
const SERVER = 3;

describe('service chain steering on a real bridge', () => {
  let sb: OvsSandbox;
  let w: FlowWriter;
  let client: SandboxPod;
  let server: SandboxPod;
  const node: NodeConfig = SANDBOX_NODE;

  async function attach(pod: SandboxPod, ofport: number): Promise<void> {
    await sb.ovs.vsctl(['add-port', BR, pod.hostIf, '--', 'set', 'interface', pod.hostIf, `ofport_request=${ofport}`]);
  }
  const addCnf = (name: string, ifnames: string[], firstOfport: number): Promise<Cnf> => addBridgeCnf(sb, BR, name, ifnames, firstOfport);

  async function install(chains: DatapathChain[]): Promise<void> {
    const pods = [client, server].map((p, i) => ({ ofport: i === 0 ? CLIENT : SERVER, ip: p.addr, mac: p.mac }));
    await w.submit(pipelineFlows({ node, pods, peers: [] }).map(addFlow));
    await w.sync(chainingSync({ round: 1, tunnelOfport: 0 }, chains));
  }

  const tcp = (port: number): Promise<string> => tcpTo(client, server, port);

  beforeAll(async () => {
    sb = await OvsSandbox.start();
    await sb.addBridge(BR);
    await sb.ovs.vsctl(['add-port', BR, 'gw0', '--', 'set', 'interface', 'gw0', 'type=internal', `ofport_request=${GW}`, `mac="${node.gatewayMac}"`]);
    client = await sb.addPod('10.10.0.2/24');
    server = await sb.addPod('10.10.0.3/24');
    await attach(client, CLIENT);
    await attach(server, SERVER);
    w = FlowWriter.forBridge(sb.ovs, BR);
  }, 60_000);

  afterAll(async () => {
    await sb?.close();
  });

  it('steers classified TCP through a Transparent, a Routed and a one-armed hop in order, and nothing else', async () => {
    const bridged = await bridging(await addCnf('t', ['in0', 'out0'], 10));
    const routed = await routing(await addCnf('r', ['in0', 'out0'], 20));
    const oneArmed = await oneArmedRouting(await addCnf('o', ['eth1'], 30));

    const chain: DatapathChain = {
      index: 7,
      precedence: 0,
      symmetric: true,
      classifier: { source: [`${client.addr}/32`], destination: [`${server.addr}/32`], protocol: 'TCP', ports: [{ port: 80 }] },
      hops: [
        { mode: 'Transparent', failurePolicy: 'FailClosed', replicas: [replica(1, bridged)] },
        { mode: 'Routed', failurePolicy: 'FailClosed', replicas: [replica(1, routed)] },
        { mode: 'Routed', failurePolicy: 'FailClosed', replicas: [replica(3, oneArmed)] },
      ],
    };
    await install([chain]);

    const before = { t: await rx(bridged, 'in0'), r: await rx(routed, 'in0'), o: await rx(oneArmed, 'eth1'), tOut: await rx(bridged, 'out0') };
    const first = await tcp(80);
    if (first !== 'hello' && process.env.CHAIN_DEBUG) {
      console.log((await run('ovs-ofctl', ['-O', 'OpenFlow15', 'dump-flows', w.ofctl.target])).stdout);
      console.log(JSON.stringify({ before, t: await rx(bridged, 'in0'), tout: await rx(bridged, 'out0'), r: await rx(routed, 'in0'), rout: await rx(routed, 'out0'), o: await rx(oneArmed, 'eth1') }));
    }
    expect(first).toBe('hello');
    const after = { t: await rx(bridged, 'in0'), r: await rx(routed, 'in0'), o: await rx(oneArmed, 'eth1'), tOut: await rx(bridged, 'out0') };
    // Forward packets entered every hop; replies came back into the Transparent hop's egress.
    expect(after.t).toBeGreaterThan(before.t);
    expect(after.r).toBeGreaterThan(before.r);
    expect(after.o).toBeGreaterThan(before.o);
    expect(after.tOut).toBeGreaterThan(before.tOut);

    // Port 81 is not classified: no CNF sees it.
    await watchPort(bridged, 'bridge', 81);
    await watchPort(routed, 'ip', 81);
    expect(await tcp(81)).toBe('hello');
    expect([await seen(bridged, 'bridge'), await seen(routed, 'ip')]).toEqual([0, 0]);

    // Counters by cookie: every replica delivered in both directions; the chain's entry counted.
    const flows = await w.dumpFlows({ cookie: chainingScope() }, { fresh: true });
    const count = (kind: number, hop: number, dir: number): number =>
      flows.filter((f) => { const o = decodeChainObject(decodeCookie(f.cookie).object); return o.kind === kind && (kind !== CookieKind.deliver || (o.hop === hop && o.direction === dir)); }).reduce((s, f) => s + Number(f.nPackets), 0);
    for (const hop of [0, 1, 2]) expect(count(CookieKind.deliver, hop, 0)).toBeGreaterThan(0);
    for (const hop of [0, 1, 2]) expect(count(CookieKind.deliver, hop, 1)).toBeGreaterThan(0);
    expect(count(CookieKind.entry, 0, 0)).toBeGreaterThan(0);
  }, 120_000);

  it('sees a forwarding probe come back out of a working replica, and not out of a broken one', async () => {
    const cnf = await bridging(await addCnf('f', ['in0', 'out0'], 40));
    const r = replica(2, cnf);
    await install([
      {
        index: 9,
        precedence: 1,
        symmetric: true,
        classifier: { source: ['10.10.0.99/32'], destination: ['0.0.0.0/0'], protocol: 'UDP', ports: [] },
        hops: [{ mode: 'Transparent', failurePolicy: 'FailOpen', probe: true, replicas: [r] }],
      },
    ]);
    const seen: string[] = [];
    const connection = new OfConnection(w.ofctl.target.replace(/^unix:/, ''));
    const prober = new ForwardingProber({ connection, onReturn: (k) => seen.push(k) });
    prober.start();
    try {
      const target = { chain: 9, hop: 0, replica: 2, ingressOfport: r.local!.ingressOfport, dstMac: probeDestinationMac('Transparent', r.local!.ingressMac) };
      // Keep probing until one comes back (the CNF's bridge may still be learning).
      let seq = 0;
      await eventually('a probe back from the bridging CNF', async () => {
        await prober.send([target], ++seq);
        await new Promise((res) => setTimeout(res, 300));
        return seen.includes(probeKey(9, 0, 2));
      }, 30_000);
      // The CNF stops forwarding: no probe comes back any more.
      await cnf.ip.apply(new IpBatch().setLink('br0', { up: false }));
      await new Promise((res) => setTimeout(res, 500));
      seen.length = 0;
      for (let i = 0; i < 5; i++) await prober.send([target], ++seq);
      await new Promise((res) => setTimeout(res, 1500));
      expect(seen).toEqual([]);
    } finally {
      prober.stop();
      connection.close();
    }
  }, 120_000);
});
