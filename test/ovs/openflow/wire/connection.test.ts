import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { chainBaseFlows, chainFlows } from '../../../../src/chaining/datapath/flows.js';
import type { DatapathChain } from '../../../../src/chaining/datapath/state.js';
import { CookieOwner, makeCookie, ownerSelector } from '../../../../src/ovs/openflow/cookie.js';
import type { InstalledFlow } from '../../../../src/ovs/openflow/dump.js';
import { addFlow, addGroup, type Flow } from '../../../../src/ovs/openflow/flow.js';
import type { Group } from '../../../../src/ovs/openflow/group.js';
import { ConnectionError, OfConnection } from '../../../../src/ovs/openflow/wire/connection.js';
import { encodeChange, type PacketIn } from '../../../../src/ovs/openflow/wire/messages.js';
import { BundleError, FlowWriter } from '../../../../src/ovs/openflow/writer.js';
import { policyFlows } from '../../../../src/policy/datapath/flows.js';
import type { DatapathRule } from '../../../../src/policy/datapath/state.js';
import { pipelineFlows } from '../../../../src/primary/pipeline/index.js';
import { trunkFlows } from '../../../../src/secondary/datapath/trunk-flows.js';
import { OvsSandbox, SANDBOX_NODE } from '../../../harness/sandbox.js';
import { eventually } from '../../../../src/util/wait.js';

const BR = 'br0';

/** Flows of every feature's builders plus every match field the wire encoder knows, in several tables. */
function everyKindOfFlow(): Flow[] {
  const chain: DatapathChain = {
    index: 5,
    precedence: 2,
    symmetric: true,
    classifier: { source: ['10.244.0.2/32', '10.244.1.0/24'], destination: ['10.244.2.3/32'], protocol: 'TCP', ports: [{ port: 80 }] },
    hops: [
      {
        mode: 'Transparent',
        failurePolicy: 'FailClosed',
        replicas: [
          { id: 1, nodeIp: '192.168.0.1', usable: true, local: { ingressOfport: 10, egressOfport: 11, ingressMac: '02:00:00:00:00:0a', egressMac: '02:00:00:00:00:0b' } },
          { id: 2, nodeIp: '192.168.0.2', usable: true },
        ],
      },
      { mode: 'Routed', failurePolicy: 'FailOpen', replicas: [{ id: 1, nodeIp: '192.168.0.2', usable: false }] },
    ],
  };
  const rule = (id: number, direction: 'Ingress' | 'Egress', tier: DatapathRule['tier'], action: DatapathRule['action']): DatapathRule => ({
    id,
    direction,
    tier,
    action,
    priority: id & 0xf,
    applied: [{ ofport: 3, namedPorts: [{ name: 'web', protocol: 'TCP', port: 8080 }] }],
    peers: { any: false, cidrs: ['10.0.0.0/8', '192.168.1.7/32'], pods: [{ ip: '10.244.1.9', namedPorts: [{ name: 'web', protocol: 'TCP', port: 8080 }] }] },
    ports: [{ protocol: 'TCP', port: 80 }, { protocol: 'UDP', port: 1000, endPort: 1031 }, { protocol: 'TCP', name: 'web' }, { protocol: 'SCTP', port: 9 }],
  });
  const cookie = makeCookie(CookieOwner.secondary, 1, 77);
  const fields: Flow[] = [
    { table: 250, priority: 10, cookie, match: { in_port: 'LOCAL', dl_vlan: 12, dl_src: 'aa:bb:cc:00:00:01/ff:ff:ff:00:00:00', protocol: 'arp', arp_op: 1, arp_spa: '10.0.0.0/16', arp_tha: '00:00:00:00:00:00' }, actions: [{ type: 'output', port: 'NORMAL' }] },
    { table: 250, priority: 11, cookie, match: { protocol: 'udp6', ipv6_src: 'fd00::/64', ipv6_dst: 'fd00::1', tp_src: { value: 0x400, mask: 0xfc00 }, tp_dst: 53 }, actions: [] },
    { table: 250, priority: 12, cookie, match: { protocol: 'icmp', icmp_type: 8, icmp_code: 0, nw_ttl: 64, ip_dscp: 46 }, actions: [{ type: 'goto_table', table: 251 }] },
    { table: 250, priority: 13, cookie, match: { protocol: 'tcp', ct_state: '+trk+est-new', ct_zone: 7, ct_mark: { value: 1, mask: 3 }, ct_label: { value: 1n << 127n, mask: 1n << 127n }, reg3: { value: 0x10, mask: 0xf0 }, xreg2: 5n, tp_dst: 443 }, actions: [] },
    { table: 250, priority: 14, cookie, match: { tun_id: 4096, tun_src: '192.168.5.1', tun_dst: '192.168.5.0/24', metadata: { value: 1n, mask: 1n }, vlan_tci: { value: 0x1000, mask: 0x1000 }, dl_type: 0x0800, nw_proto: 17 }, actions: [] },
    { table: 250, priority: 15, cookie, match: { conj_id: 0x10001, protocol: 'ip' }, actions: [], idleTimeout: 60, hardTimeout: 600 },
  ];
  return [
    ...pipelineFlows({ node: SANDBOX_NODE, pods: [{ ofport: 3, ip: '10.10.0.3', mac: '02:00:00:00:03:01' }], peers: [{ index: 0, nodeIp: '192.168.77.2', podCidr: '10.244.2.0/24', gatewayIp: '10.244.2.1' }] }),
    ...policyFlows({ round: 1, rules: [rule(0x10001, 'Ingress', 'NetworkPolicy', 'Accept'), rule(0x10002, 'Egress', 'Admin', 'Deny'), rule(0x10003, 'Ingress', 'Baseline', 'Pass')], isolations: [{ direction: 'Ingress', ofport: 3, ruleId: 0x10001 }] }),
    ...chainBaseFlows({ round: 3, tunnelOfport: 1 }),
    ...chainFlows({ round: 3, tunnelOfport: 1 }, chain),
    ...trunkFlows({ round: 7, functionPorts: [5, 3] }),
    ...fields,
  ];
}

const comparable = (flows: InstalledFlow[]): string[] => flows.map((f) => `table=${f.table},priority=${f.priority},cookie=${f.cookie},idle=${f.idleTimeout},hard=${f.hardTimeout},${f.match} actions=${f.actions}`).sort();

describe('OpenFlow 1.5 connection to a real ovs-vswitchd', () => {
  let sb: OvsSandbox;

  beforeAll(async () => {
    sb = await OvsSandbox.start();
    await sb.addBridge(BR);
    for (const g of [1, 2, 3, 4]) await sb.ovs.vsctl(['add-port', BR, `p${g}`, '--', 'set', 'interface', `p${g}`, 'type=internal', `ofport_request=${g}`]);
  }, 60_000);
  afterAll(async () => {
    await sb?.close();
  });

  const ofctlWriter = (): FlowWriter => FlowWriter.forBridge(sb.ovs, BR, { connection: false });
  const wireWriter = (): FlowWriter => FlowWriter.forBridge(sb.ovs, BR, { connection: new OfConnection(sb.ovs.bridgeMgmt(BR).slice('unix:'.length)) });
  const clear = async (): Promise<void> => {
    const w = ofctlWriter();
    await w.ofctl.run(['del-flows', w.ofctl.target]);
    await w.ofctl.run(['del-groups', w.ofctl.target]);
  };

  it('installs exactly what ovs-ofctl installs, for every feature\'s flows and groups', async () => {
    const flows = everyKindOfFlow();
    const groups: Group[] = [
      { id: 7, type: 'select', buckets: [{ weight: 10, actions: [{ type: 'output', port: 1 }] }, { weight: 20, watchPort: 2, actions: [{ type: 'set_field', field: 'eth_dst', value: '02:00:00:00:00:02' }, { type: 'output', port: 2 }] }] },
      { id: 8, type: 'ff', buckets: [{ watchPort: 1, actions: [{ type: 'output', port: 1 }] }, { watchPort: 2, actions: [{ type: 'output', port: 2 }] }] },
      { id: 9, type: 'all', buckets: [{ actions: [{ type: 'output', port: 3 }] }, { actions: [{ type: 'group', id: 8 }] }] },
      { id: 10, type: 'select', selectionMethod: 'dp_hash', selectionMethodParam: 0x1_0000_0007, buckets: [{ weight: 100, actions: [{ type: 'output', port: 1 }] }, { weight: 100, actions: [{ type: 'output', port: 2 }] }] },
    ];
    const changes = [...groups.map(addGroup), ...flows.map(addFlow)];

    await clear();
    const reference = ofctlWriter();
    await reference.submit(changes);
    const wantFlows = comparable(await reference.dumpFlows());
    const wantGroups = (await reference.dumpGroups()).map((g) => g.text).sort();

    await clear();
    const w = wireWriter();
    // Flows with raw actions (multipath, learn, controller) only ovs-ofctl can say: send the rest over the wire.
    const encodable = changes.filter((c) => {
      try {
        encodeChange(c, 1);
        return true;
      } catch {
        return false;
      }
    });
    expect(encodable.length).toBeGreaterThan(changes.length * 0.8);
    await w.submit(encodable);
    expect(w.stats.ofctlBundles).toBe(0);
    await w.submit(changes.filter((c) => !encodable.includes(c)));
    expect(comparable(await w.dumpFlows())).toEqual(wantFlows);
    expect((await w.dumpGroups()).map((g) => g.text).sort()).toEqual(wantGroups);
  }, 120_000);

  it('a bundle the switch refuses installs nothing and names the refused change', async () => {
    await clear();
    const w = wireWriter();
    const flow = (i: number, extra: Partial<Flow> = {}): Flow => ({ table: 5, priority: 100, cookie: makeCookie(CookieOwner.primary, 1, i), match: { protocol: 'ip', nw_dst: `10.0.0.${i}` }, actions: [{ type: 'output', port: 1 }], ...extra });
    const changes = [addFlow(flow(1)), addFlow(flow(2, { actions: [{ type: 'group', id: 99 }] })), addFlow(flow(3))];
    const err = (await w.submit(changes).catch((e: unknown) => e)) as BundleError;
    expect(err).toBeInstanceOf(BundleError);
    expect(err.reason).toBe('OFPBAC_BAD_OUT_GROUP');
    expect(err.failed?.index).toBe(1);
    expect(err.failed?.change).toBe(changes[1]);
    expect(await w.dumpFlows({ table: 5 })).toEqual([]);
    expect(w.stats.ofctlBundles).toBe(0);

    // A message the switch cannot decode (an IPv4 field without its ethertype) is refused at once; the bundle is discarded.
    const bad = [addFlow(flow(1)), addFlow(flow(2)), addFlow({ ...flow(3), match: { nw_dst: '10.0.0.3' } })];
    const err2 = (await w.submit(bad).catch((e: unknown) => e)) as BundleError;
    expect(err2).toBeInstanceOf(BundleError);
    expect(err2.failed?.index).toBe(2);
    expect(await w.dumpFlows({ table: 5 })).toEqual([]);

    // The connection is still good for the next bundle.
    await w.submit([addFlow(flow(1)), addFlow(flow(2))]);
    expect((await w.dumpFlows({ table: 5 })).length).toBe(2);
  }, 60_000);

  it('a sync after a verified one sends only the difference, without reading the switch', async () => {
    await clear();
    const w = wireWriter();
    const scope = ownerSelector(CookieOwner.policy);
    const flows = Array.from({ length: 300 }, (_, i): Flow => ({ table: 60, priority: 200, cookie: makeCookie(CookieOwner.policy, 1, 1), match: { protocol: 'ip', nw_src: `172.16.${i >> 8}.${i & 255}` }, actions: [{ type: 'conjunction', id: 0x10000, clause: 1, clauses: 2 }] }));
    const first = await w.sync({ cookie: scope, flows });
    expect(first.added).toBe(300);
    const spawns = w.spawns;
    const changed = [...flows.slice(1), { ...flows[0]!, match: { protocol: 'ip' as const, nw_src: '192.0.2.1' } }];
    changed[5] = { ...changed[5]!, actions: [{ type: 'conjunction', id: 0x10001, clause: 1, clauses: 2 }] };
    const second = await w.sync({ cookie: scope, flows: changed });
    expect({ added: second.added, modified: second.modified, deleted: second.deleted }).toEqual({ added: 1, modified: 1, deleted: 1 });
    expect(w.spawns).toBe(spawns); // no dump, no canonicalisation, no ovs-ofctl bundle
    // The switch agrees with what the writer believes.
    expect((await w.sync({ cookie: scope, flows: changed }, { verify: true })).changes).toEqual([]);

    // A flow of a cookie that other flows keep goes by a strict delete; a cookie none of whose flows stay, by one
    // delete of that cookie.
    expect(second.changes.filter((c) => c.kind === 'flow' && c.op === 'delete_strict')).toHaveLength(1);
    const other = makeCookie(CookieOwner.policy, 1, 2);
    const more = Array.from({ length: 50 }, (_, i): Flow => ({ table: 62, priority: 10, cookie: other, match: { protocol: 'tcp', tp_dst: 1000 + i }, actions: [] }));
    await w.sync({ cookie: scope, flows: [...changed, ...more] });
    expect((await w.dumpFlows({ table: 62 })).length).toBe(50);
    const dropped = await w.sync({ cookie: scope, flows: changed });
    expect(dropped.deleted).toBe(50);
    expect(dropped.changes).toEqual([{ kind: 'flow', op: 'delete', filter: { cookie: { value: other, mask: (1n << 64n) - 1n } } }]);
    expect(await w.dumpFlows({ table: 62 })).toEqual([]);
    expect((await w.dumpFlows({ table: 60 })).length).toBe(300);

    // Behind the writer's back: the connection closes (as when ovs-vswitchd restarts); the next sync reads the
    // switch again and repairs what was lost.
    await w.ofctl.run(['del-flows', w.ofctl.target, 'table=60']);
    w.wire!.close();
    await new Promise((r) => setTimeout(r, 100));
    const repaired = await w.sync({ cookie: scope, flows: changed });
    expect(repaired.added).toBe(300);
    expect((await w.dumpFlows({ table: 60 })).length).toBe(300);
  }, 60_000);

  it('a sync of a scope nested in another makes the outer one read the switch again', async () => {
    await clear();
    const w = wireWriter();
    const outer = ownerSelector(CookieOwner.primary);
    const podCookie = makeCookie(CookieOwner.primary, 1, 9);
    const inner = { value: podCookie, mask: (1n << 64n) - 1n };
    const base: Flow[] = [{ table: 70, priority: 1, cookie: makeCookie(CookieOwner.primary, 1, 1), actions: [] }];
    const pod: Flow[] = [1, 2, 3].map((p) => ({ table: 70, priority: 10, cookie: podCookie, match: { in_port: p }, actions: [] }));
    await w.sync({ cookie: outer, flows: [...base, ...pod] });
    expect((await w.sync({ cookie: outer, flows: base })).deleted).toBe(3);
    expect((await w.sync({ cookie: inner, flows: pod })).added).toBe(3);
    // The outer scope's record said the pod's flows were gone; the inner sync put them back.
    expect((await w.sync({ cookie: outer, flows: [...base, ...pod] })).changes).toEqual([]);
    expect((await w.countFlows({ table: 70 })).flows).toBe(4);
  }, 60_000);

  it('ten thousand flows in one bundle, counted by one aggregate request as ovs-ofctl counts them', async () => {
    await clear();
    const w = wireWriter();
    const flows = Array.from({ length: 10_000 }, (_, i): Flow => ({ table: 61, priority: 100, cookie: makeCookie(CookieOwner.policy, 1, 2 + (i % 2)), match: { protocol: 'ip', nw_src: `172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}` }, actions: [] }));
    await w.submit(flows.map(addFlow));
    expect((await w.dumpFlows({ table: 61 })).length).toBe(10_000);
    expect(w.stats.ofctlBundles).toBe(0);
    const odd = { value: makeCookie(CookieOwner.policy, 1, 3), mask: (1n << 64n) - 1n };
    for (const filter of [{ table: 61 }, { cookie: odd }, { table: 61, match: { protocol: 'ip' as const, nw_src: '172.16.0.0/24' } }, { table: 62 }]) {
      const viaOfctl = await ofctlWriter().countFlows(filter);
      expect(await w.countFlows(filter)).toEqual(viaOfctl);
    }
    expect((await w.countFlows({ cookie: odd })).flows).toBe(5000);
  }, 120_000);

  it('installs a group too large for one OpenFlow message, atomically', async () => {
    await clear();
    const w = wireWriter();
    const buckets = (n: number): Group['buckets'] =>
      Array.from({ length: n }, (_, i) => ({ weight: 1 + (i % 7), actions: [{ type: 'set_field', field: 'eth_dst', value: `02:00:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}` }, { type: 'output', port: 1 + (i % 4) }] }));
    // A Service's group: dp_hash selection, whose property rides in the first message.
    const big: Group = { id: 40, type: 'select', selectionMethod: 'dp_hash', selectionMethodParam: 0, buckets: buckets(5000) };
    // With a flow the switch refuses in the same bundle, nothing lands: not even the group's first message.
    const refused = await w.submit([addGroup(big), addFlow({ table: 7, priority: 1, actions: [{ type: 'group', id: 41 }] })]).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(BundleError);
    expect((refused as BundleError).failed?.index).toBe(1);
    expect(await w.dumpGroups(40)).toEqual([]);

    await w.submit([addGroup(big), addFlow({ table: 7, priority: 1, actions: [{ type: 'group', id: 40 }] })]);
    // OVS cannot dump such a group either (a group description's length is 16 bits), so its buckets are found one
    // by one: removing a bucket succeeds only if the group has it. Ids from every message of the split, and one past.
    const removeBucket = (id: number): Promise<boolean> =>
      w.ofctl.run(['remove-buckets', w.ofctl.target, `group_id=40,command_bucket_id=${id}`]).then(
        () => true,
        () => false,
      );
    for (const id of [0, 1363, 1364, 2728, 4095, 4096, 4999]) expect([id, await removeBucket(id)]).toEqual([id, true]);
    expect(await removeBucket(5000)).toBe(false);
    expect(await removeBucket(4999)).toBe(false); // gone now: the check can fail
    expect(w.stats.ofctlBundles).toBe(0);
    // Replaced by a small one: its buckets only.
    await w.setGroup({ ...big, buckets: buckets(3) });
    expect((await w.dumpGroups(40))[0]?.buckets).toHaveLength(3);
  }, 120_000);

  it('injects packets into the pipeline and receives the packet-ins of its flows, again after the connection was lost', async () => {
    await clear();
    const cookie = makeCookie(CookieOwner.chaining, 1, 42);
    const w = ofctlWriter();
    await w.sync({ cookie: ownerSelector(CookieOwner.chaining), flows: [{ table: 0, priority: 100, cookie, match: { protocol: 'udp', tp_dst: 7 }, actions: [{ type: 'output', port: 'CONTROLLER' }] }] });
    const c = new OfConnection(sb.ovs.bridgeMgmt(BR).slice('unix:'.length));
    const got: PacketIn[] = [];
    const stop = c.onPacketIn((p) => got.push(p));
    // Ethernet / IPv4 / UDP to port 7 with a payload of its own.
    const frame = (n: number): Buffer =>
      Buffer.concat([Buffer.from('020000000001' + '020000000002' + '0800' + '45000020000040004011' + '0000' + '0a000001' + '0a000002' + '00070007000c0000', 'hex'), Buffer.from(`pkt${n}`)]);
    try {
      await c.packetOut([{ data: frame(1), actions: [{ type: 'output', port: 'TABLE' }] }, { data: frame(2), actions: [{ type: 'output', port: 'TABLE' }] }]);
      await eventually('two packet-ins', async () => (got.length >= 2 ? true : undefined), 10_000, 50);
      expect(got.map((p) => ({ cookie: p.cookie, table: p.tableId, tail: p.data.subarray(-4).toString() }))).toEqual([
        { cookie, table: 0, tail: 'pkt1' },
        { cookie, table: 0, tail: 'pkt2' },
      ]);
      // in_port (OXM basic field 0) says where the packet came from: the controller.
      expect(got[0]!.fields.find((f) => f.class === 0x8000 && f.field === 0)?.value.readUInt32BE(0)).toBe(0xfffffffd);
      // The connection goes away (as when ovs-vswitchd restarts): it comes back by itself, asks again, and packet-ins follow.
      const before = c.connectedSince;
      c['socket']?.destroy();
      await eventually('connected again', async () => (c.connected && c.connectedSince !== before ? true : undefined), 10_000, 100);
      got.length = 0;
      await c.packetOut([{ data: frame(3), actions: [{ type: 'output', port: 'TABLE' }] }]);
      await eventually('a packet-in after the reconnect', async () => (got.length ? true : undefined), 10_000, 50);
      expect(got[0]!.data.subarray(-4).toString()).toBe('pkt3');
    } finally {
      stop();
      c.close();
    }
  }, 60_000);

  it('says clearly when the switch does not speak OpenFlow 1.5, or is not there', async () => {
    await sb.ovs.vsctl(['add-br', 'br13', '--', 'set', 'bridge', 'br13', 'datapath_type=netdev', 'protocols=OpenFlow13', 'fail_mode=secure']);
    const c = new OfConnection(sb.ovs.bridgeMgmt('br13').slice('unix:'.length));
    const err = await c.barrier().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect(String(err)).toMatch(/OpenFlow 1\.5|closed|HELLO/);
    const gone = new OfConnection(join(sb.ovs.bridgeMgmt(BR).slice('unix:'.length), '..', 'no-such.mgmt'));
    expect(await gone.barrier().catch((e: unknown) => e)).toBeInstanceOf(ConnectionError);
  }, 60_000);

  it('answers the switch\'s echo requests and survives a peer that says nothing', async () => {
    // A fake switch on a socket of the test's own: greets, asks for an echo, then never replies to a barrier.
    const path = join(sb.ovs.bridgeMgmt(BR).slice('unix:'.length), '..', 'fake.mgmt');
    const echoed: number[] = [];
    const server: Server = createServer((s) => {
      s.write(Buffer.from('0600000800000001', 'hex')); // HELLO 1.5
      s.write(Buffer.from('060200080000abcd', 'hex')); // ECHO_REQUEST xid 0xabcd
      s.on('data', (d: Buffer) => {
        for (let off = 0; off + 8 <= d.length; off += d.readUInt16BE(off + 2)) if (d[off + 1] === 3) echoed.push(d.readUInt32BE(off + 4));
      });
    });
    await new Promise<void>((r) => server.listen(path, r));
    try {
      const c = new OfConnection(path, { timeoutMs: 1000 });
      const err = await c.barrier().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectionError);
      expect(String(err)).toMatch(/no reply/);
      expect(echoed).toContain(0xabcd);
    } finally {
      await new Promise((r) => server.close(r));
    }
  }, 30_000);
});
