// The chain stage's flows on a real bridge with real packets (one node, no agent): order of hops, Routed TTL,
// one-armed CNFs, unclassified traffic untouched, replies through the same replicas, failure policies.
import { run, succeeds } from '../../../src/host/exec.js';
import { IpBatch, IpRoute } from '../../../src/host/ip.js';
import { createNetns } from '../../../src/host/netns.js';
import { addFlow, FlowWriter } from '../../../src/ovs/openflow/index.js';
import { pipelineFlows, type NodeConfig } from '../../../src/primary/pipeline/index.js';
import { chainingSync, NEXT_HOP_IP } from '../../../src/chaining/datapath/flows.js';
import { decodeChainObject, CookieKind, chainingScope } from '../../../src/chaining/datapath/layout.js';
import type { DatapathChain, HopReplica } from '../../../src/chaining/datapath/state.js';
import { decodeCookie } from '../../../src/ovs/openflow/cookie.js';
import { eventually } from '../../../src/util/wait.js';
import { OvsSandbox, type SandboxPod } from '../../harness/sandbox.js';
import { ForwardingProber, probeDestinationMac, probeKey } from '../../../src/chaining/agent/probe.js';

const BR = 'br-int';
const GW = 1;
const CLIENT = 2;
const SERVER = 3;

interface Cnf {
  netns: string;
  ip: IpRoute;
  ports: Array<{ ifname: string; ofport: number; mac: string }>;
}

describe('service chain steering on a real bridge', () => {
  let sb: OvsSandbox;
  let w: FlowWriter;
  let client: SandboxPod;
  let server: SandboxPod;
  const cnfs: Cnf[] = [];
  const node: NodeConfig = {
    mode: 'noEncap',
    round: 1,
    gatewayOfport: GW,
    tunnelOfport: 0,
    gatewayIp: '10.10.0.1',
    gatewayMac: '0a:00:00:00:00:01',
    podCidr: '10.10.0.0/24',
    clusterCidr: '10.10.0.0/16',
  };

  async function attach(pod: SandboxPod, ofport: number): Promise<void> {
    await sb.ovs.vsctl(['add-port', BR, pod.hostIf, '--', 'set', 'interface', pod.hostIf, `ofport_request=${ofport}`]);
  }

  /** A CNF pod: its own netns with function interfaces joined to the bridge, no addresses. */
  async function addCnf(name: string, ifnames: string[], firstOfport: number): Promise<Cnf> {
    const ns = `${sb.id}-${name}`;
    sb.ledger.netns(ns);
    const netns = await createNetns(ns);
    const ip = new IpRoute(netns);
    const ports: Cnf['ports'] = [];
    for (const [i, ifname] of ifnames.entries()) {
      const hostIf = `${sb.id}${name}${i}`;
      const mac = `02:00:00:0c:${(firstOfport + i).toString(16).padStart(2, '0')}:01`;
      await sb.ip.apply(new IpBatch().addVeth(hostIf, ifname, { peerNetns: netns, peerMac: mac }).setLink(hostIf, { up: true }));
      await ip.apply(new IpBatch().setLink(ifname, { up: true }));
      await sb.ip.txOffloadOff(hostIf);
      await ip.txOffloadOff(ifname);
      await sb.ovs.vsctl(['add-port', BR, hostIf, '--', 'set', 'interface', hostIf, `ofport_request=${firstOfport + i}`]);
      ports.push({ ifname, ofport: firstOfport + i, mac });
    }
    const cnf = { netns, ip, ports };
    cnfs.push(cnf);
    return cnf;
  }

  const rx = async (cnf: Cnf, ifname: string): Promise<number> => {
    const { stdout } = await run('ip', ['-s', '-j', 'link', 'show', ifname], { netns: cnf.netns });
    return Number((JSON.parse(stdout) as Array<{ stats64: { rx: { packets: number } } }>)[0]!.stats64.rx.packets);
  };

  /** Counts TCP packets to `port` seen by a CNF (bridge family for a bridging CNF, ip for a routing one). */
  async function watchPort(cnf: Cnf, family: 'bridge' | 'ip', port: number): Promise<void> {
    const hook = family === 'bridge' ? 'forward' : 'prerouting';
    await run('nft', ['-f', '-'], { netns: cnf.netns, input: `table ${family} seine_test { chain c { type filter hook ${hook} priority 0; tcp dport ${port} counter; }; }\n` });
  }
  async function seen(cnf: Cnf, family: 'bridge' | 'ip'): Promise<number> {
    const { stdout } = await run('nft', ['-j', 'list', 'table', family, 'seine_test'], { netns: cnf.netns });
    const items = (JSON.parse(stdout) as { nftables: Array<{ rule?: { expr: Array<{ counter?: { packets: number } }> } }> }).nftables;
    return items.flatMap((i) => i.rule?.expr ?? []).reduce((n, e) => n + (e.counter?.packets ?? 0), 0);
  }

  function replica(id: number, cnf: Cnf, usable = true): HopReplica {
    const [a, b] = [cnf.ports[0]!, cnf.ports[1] ?? cnf.ports[0]!];
    return { id, nodeIp: '192.168.0.1', usable, local: { ingressOfport: a.ofport, egressOfport: b.ofport, ingressMac: a.mac, egressMac: b.mac } };
  }

  async function install(chains: DatapathChain[]): Promise<void> {
    const pods = [client, server].map((p, i) => ({ ofport: i === 0 ? CLIENT : SERVER, ip: p.addr, mac: p.mac }));
    await w.submit(pipelineFlows({ node, pods, peers: [] }).map(addFlow));
    await w.sync(chainingSync({ round: 1, tunnelOfport: 0 }, chains));
  }

  /** One TCP exchange from the client to the server's `port`: what the server received ('' when nothing came). */
  async function tcp(port: number): Promise<string> {
    const srv = run('timeout', ['10', 'nc', '-l', '-p', String(port)], { netns: server.netns }).then((r) => r.stdout.trim(), () => '');
    await eventually(`server listening on ${port}`, async () => (await run('ss', ['-Hltn', `sport = :${port}`], { netns: server.netns })).stdout.trim() !== '', 10_000);
    await succeeds('sh', ['-c', `echo hello | nc -N -w 5 ${server.addr} ${port}`], { netns: client.netns, timeoutMs: 15_000 });
    return srv;
  }

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
    const bridged = await addCnf('t', ['in0', 'out0'], 10);
    await bridged.ip.apply(new IpBatch().addLink('br0', 'bridge').setLink('in0', { master: 'br0' }).setLink('out0', { master: 'br0' }).setLink('br0', { up: true }));
    const routed = await addCnf('r', ['in0', 'out0'], 20);
    await routed.ip.sysctl({ 'net.ipv4.ip_forward': 1, 'net.ipv4.conf.all.rp_filter': 0, 'net.ipv4.conf.in0.rp_filter': 0, 'net.ipv4.conf.out0.rp_filter': 0 });
    await routed.ip.apply(
      new IpBatch()
        .command('rule', 'add', 'iif', 'in0', 'lookup', '100')
        .command('rule', 'add', 'iif', 'out0', 'lookup', '101')
        .replaceRoute('default', { via: NEXT_HOP_IP, dev: 'out0', onlink: true, table: 100 })
        .replaceRoute('default', { via: NEXT_HOP_IP, dev: 'in0', onlink: true, table: 101 }),
    );
    const oneArmed = await addCnf('o', ['eth1'], 30);
    await oneArmed.ip.sysctl({ 'net.ipv4.ip_forward': 1, 'net.ipv4.conf.all.rp_filter': 0, 'net.ipv4.conf.eth1.rp_filter': 0, 'net.ipv4.conf.all.send_redirects': 0, 'net.ipv4.conf.eth1.send_redirects': 0 });
    await oneArmed.ip.apply(new IpBatch().command('rule', 'add', 'iif', 'eth1', 'lookup', '100').replaceRoute('default', { via: NEXT_HOP_IP, dev: 'eth1', onlink: true, table: 100 }));

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
    const cnf = await addCnf('f', ['in0', 'out0'], 40);
    await cnf.ip.apply(new IpBatch().addLink('br0', 'bridge').setLink('in0', { master: 'br0' }).setLink('out0', { master: 'br0' }).setLink('br0', { up: true }));
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
    const prober = new ForwardingProber({ target: w.ofctl.target, rundir: sb.ovs.rundir, onReturn: (k) => seen.push(k) });
    prober.start();
    try {
      const target = { chain: 9, hop: 0, replica: 2, ingressOfport: r.local!.ingressOfport, dstMac: probeDestinationMac('Transparent', r.local!.ingressMac) };
      // The monitor may not be connected for the first probes: keep probing until one comes back.
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
    }
  }, 120_000);
});
