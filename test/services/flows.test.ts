// The Service proxy's tables and groups (serviceDatapath), checked offline: where each flow can send a packet,
// the variants of each frontend, hairpin, the select groups and their ids, client affinity's learn actions and
// their cookies, and that everything renders to text ovs-ofctl parses and to the wire.
import { decodeCookie, selectorMatches, CookieOwner } from '../../src/ovs/openflow/cookie.js';
import { addFlow, addGroup, renderFlow, renderFlowKey, type Flow } from '../../src/ovs/openflow/flow.js';
import { renderGroup, type Group } from '../../src/ovs/openflow/group.js';
import { Ofctl, canonicalFlows } from '../../src/ovs/openflow/ofctl.js';
import { canonicalInput, flowKey } from '../../src/ovs/openflow/sync.js';
import { encodeChange, encodeChangeMessages } from '../../src/ovs/openflow/wire/messages.js';
import { renderActions, type Action } from '../../src/ovs/openflow/actions.js';
import { CT_ZONE, FromLocalPod, HAIRPIN_VIRTUAL_IP, SEAMS, baseFlows, loadField, matchMarks, type NodeConfig } from '../../src/primary/pipeline/index.js';
import { DatapathMemo, GroupIds, frontendKey, serviceDatapath, serviceSync, type ServiceNode } from '../../src/services/datapath/flows.js';
import {
  AffinityChosenField,
  EndpointIpField,
  EndpointPortField,
  FIRST_GROUP_ID,
  LEARNED_COOKIE,
  ServicePriority,
  ServiceTable as T,
  ownsGroup,
  serviceScope,
} from '../../src/services/datapath/layout.js';
import { NODEPORT_VIRTUAL_IP } from '../../src/services/host/index.js';
import type { NodeServices, ServiceEndpoint, ServiceFrontend } from '../../src/services/model/types.js';

const node: ServiceNode = { round: 3, gatewayIp: '10.244.1.1', podCidr: '10.244.1.0/24' };
const pipelineNode: NodeConfig = {
  mode: 'encap',
  round: 3,
  gatewayOfport: 2,
  tunnelOfport: 1,
  gatewayIp: node.gatewayIp,
  gatewayMac: '0a:00:c0:a8:4d:01',
  podCidr: node.podCidr,
  clusterCidr: '10.244.0.0/16',
};

const localA: ServiceEndpoint = { ip: '10.244.1.5', port: 8080, local: true };
const localB: ServiceEndpoint = { ip: '10.244.1.6', port: 8080, local: true };
const remoteA: ServiceEndpoint = { ip: '10.244.2.5', port: 8080, local: false };
const remoteB: ServiceEndpoint = { ip: '10.244.3.5', port: 8080, local: false };

function fe(service: string, kind: ServiceFrontend['kind'], ip: string, protocol: ServiceFrontend['protocol'], port: number, endpoints: ServiceEndpoint[], extra: Partial<ServiceFrontend> = {}): ServiceFrontend {
  return { service, kind, ip, protocol, port, endpoints, reject: endpoints.length === 0, ...extra };
}

const frontends = {
  plain: fe('default/web:http', 'ClusterIP', '10.96.0.10', 'TCP', 80, [localA, remoteA]),
  udpAffinity: fe('default/dns:dns', 'ClusterIP', '10.96.0.11', 'UDP', 53, [remoteA, remoteB], { affinitySeconds: 10 }),
  empty: fe('default/nobody:http', 'ClusterIP', '10.96.0.12', 'TCP', 80, []),
  npLocal: fe('default/np:http', 'NodePort', NODEPORT_VIRTUAL_IP, 'TCP', 30080, [localA, remoteA], { externalEndpoints: [localA] }),
  npLocalNone: fe('default/np2:http', 'NodePort', NODEPORT_VIRTUAL_IP, 'TCP', 30081, [remoteA], { externalEndpoints: [] }),
  extLocal: fe('default/lb:http', 'External', '192.0.2.10', 'TCP', 80, [localB, remoteB], { externalEndpoints: [localB] }),
  extLocalNone: fe('default/lb2:http', 'External', '192.0.2.11', 'TCP', 80, [remoteB], { externalEndpoints: [] }),
  sctpAffinity: fe('default/sig:sctp', 'External', '192.0.2.12', 'SCTP', 9000, [remoteA], { affinitySeconds: 30 }),
};
const state: NodeServices = { frontends: Object.values(frontends), nodePorts: [], healthChecks: [] };

const learnText = (f: Flow): string | undefined => f.actions.flatMap((a) => (a.type === 'learn' ? [renderActions([a])] : []))[0];
const isLearn = (f: Flow): boolean => learnText(f) !== undefined;

type Target = { how: 'goto' | 'ct' | 'resubmit'; table: number };

/** Tables an action list can send a packet to next, with how. */
function targets(actions: readonly Action[]): Target[] {
  return actions.flatMap((a): Target[] => {
    if (a.type === 'goto_table') return [{ how: 'goto', table: a.table }];
    if ((a.type === 'ct' || a.type === 'resubmit') && a.table !== undefined) return [{ how: a.type, table: a.table }];
    return [];
  });
}

const groupsOf = (f: Flow): number[] => f.actions.flatMap((a) => (a.type === 'group' ? [a.id] : []));
const forFrontend = (flows: Flow[], f: ServiceFrontend, table: number): Flow[] => flows.filter((x) => x.table === table && x.match?.nw_dst === f.ip && x.match?.tp_dst === f.port);
const ipNumber = (ip: string): number => ip.split('.').reduce((a, b) => a * 256 + Number(b), 0);

describe('serviceDatapath: structure', () => {
  const dp = serviceDatapath(node, state, new GroupIds());
  const inSeam = (t: number): boolean => t >= SEAMS.service.first && t <= SEAMS.service.last;

  it('stays in the Service seam: flows in its tables, every target inside it or its exit, goto and ct only forward', () => {
    expect(dp.flows.every((f) => inSeam(f.table!))).toBe(true);
    for (const f of dp.flows) {
      for (const t of targets(f.actions)) {
        expect([f.table, t.how, inSeam(t.table) || t.table === SEAMS.service.exit]).toEqual([f.table, t.how, true]);
        if (t.how !== 'resubmit') expect([f.table, t.how, t.table > f.table!]).toEqual([f.table, t.how, true]);
      }
    }
    for (const g of dp.groups) for (const b of g.buckets) for (const t of targets(b.actions)) expect([g.id, t.how, inSeam(t.table)]).toEqual([g.id, 'resubmit', true]);
  });

  it('has a priority-0 flow in every table it uses or sends to (the Entry table\'s is the pipeline\'s)', () => {
    const all = [...baseFlows(pipelineNode), ...dp.flows];
    const used = new Set<number>([...dp.flows.map((f) => f.table!), ...dp.flows.flatMap((f) => targets(f.actions).map((t) => t.table)), ...dp.groups.flatMap((g) => g.buckets.flatMap((b) => targets(b.actions).map((t) => t.table)))]);
    used.delete(SEAMS.service.exit);
    expect([...used].sort()).toEqual([T.Entry, T.SessionAffinity, T.ServiceLB, T.AffinityLearn, T.EndpointDNAT, T.Hairpin]);
    for (const t of used) expect([t, all.some((f) => f.table === t && (f.priority ?? 0) === 0)]).toEqual([t, true]);
    // The proxy leaves the Entry table's miss flow to the pipeline.
    expect(dp.flows.filter((f) => f.table === T.Entry && f.priority === 0)).toEqual([]);
    // A frontend not matched goes on to the exit; lookups that miss return to the flow that resubmitted.
    const miss = (t: number): Action[] => dp.flows.find((f) => f.table === t && f.priority === 0)!.actions;
    expect(miss(T.ServiceLB)).toEqual([{ type: 'goto_table', table: T.exit }]);
    expect(miss(T.Hairpin)).toEqual([{ type: 'goto_table', table: T.exit }]);
    for (const t of [T.SessionAffinity, T.AffinityLearn, T.EndpointDNAT]) expect(miss(t)).toEqual([]);
  });

  it('never has two flows with the same table, priority and match, as written and as OVS reads them', async () => {
    const keys = dp.flows.map(renderFlowKey);
    expect(keys.filter((k, i) => keys.indexOf(k) !== i)).toEqual([]);
    const ofctl = new Ofctl('unix:/nonexistent');
    const parsed = await ofctl.parseFlows(dp.flows.map(renderFlow));
    expect(parsed.map((p) => [p.table, p.priority])).toEqual(dp.flows.map((f) => [f.table, f.priority]));
    const canon = await canonicalFlows(ofctl, dp.flows.map(canonicalInput));
    const canonKeys = canon.map((c) => flowKey(c.table, c.priority, c.match));
    expect(new Set(canonKeys).size).toBe(canonKeys.length);
  });

  it('renders every flow and group, and encodes every flow (learn flows too) for the wire', async () => {
    for (const f of dp.flows) {
      expect(() => renderFlow(f)).not.toThrow();
      expect(encodeChange(addFlow(f), 1).length).toBeGreaterThan(0);
    }
    expect(dp.flows.filter(isLearn)).toHaveLength(2);
    const ofctl = new Ofctl('unix:/nonexistent');
    for (const g of dp.groups) {
      const text = renderGroup(g);
      expect(text).toContain('selection_method=dp_hash');
      await expect(ofctl.parseGroup(text)).resolves.toContain(`group_id=${g.id}`);
      expect(encodeChangeMessages(addGroup(g))).toHaveLength(1);
      expect(encodeChange(addGroup(g), 1).length).toBeGreaterThan(0);
    }
  });

  it('carries the proxy\'s cookie of this round on every flow, inside the sync\'s scope', () => {
    const sync = serviceSync(dp);
    expect(sync.cookie).toEqual(serviceScope());
    for (const f of dp.flows) {
      expect(decodeCookie(f.cookie!)).toMatchObject({ owner: CookieOwner.services, round: node.round });
      expect(selectorMatches(sync.cookie, f.cookie!)).toBe(true);
    }
    expect(sync.groups!.desired).toBe(dp.groups);
    expect(dp.groups.every((g) => sync.groups!.owns(g.id))).toBe(true);
    expect(ownsGroup(FIRST_GROUP_ID - 1)).toBe(false);
  });
});

describe('serviceDatapath: frontends', () => {
  const ids = new GroupIds();
  const dp = serviceDatapath(node, state, ids);
  const lb = (f: ServiceFrontend): Flow[] => forFrontend(dp.flows, f, T.ServiceLB);
  const group = (id: number): Group => dp.groups.find((g) => g.id === id)!;
  /** The group's buckets name exactly these endpoints, in order, in reg3/reg4. */
  const expectGroupOf = (id: number, eps: ServiceEndpoint[]): void => {
    expect(group(id).buckets.map((b) => b.actions.slice(0, -1))).toEqual(eps.map((e) => [loadField(EndpointIpField, ipNumber(e.ip)), loadField(EndpointPortField, e.port)]));
  };

  it('sends a frontend to one dp_hash select group with a bucket per endpoint', () => {
    const flows = lb(frontends.plain);
    expect(flows.map((f) => [f.priority, f.match])).toEqual([[ServicePriority.normal, { protocol: 'tcp', nw_dst: '10.96.0.10', tp_dst: 80 }]]);
    const [id] = groupsOf(flows[0]!);
    const g = group(id!);
    expect(g).toMatchObject({ type: 'select', selectionMethod: 'dp_hash' });
    expectGroupOf(id!, [localA, remoteA]);
    for (const b of g.buckets) {
      expect(b.weight).toBe(100);
      expect(b.actions[b.actions.length - 1]).toEqual({ type: 'resubmit', table: T.EndpointDNAT });
    }
    // Every group is a dp_hash select group; no two share an id.
    expect(dp.groups.every((x) => x.type === 'select' && x.selectionMethod === 'dp_hash')).toBe(true);
    expect(new Set(dp.groups.map((x) => x.id)).size).toBe(dp.groups.length);
  });

  it('gives a frontend without endpoints no flow and no group, so the node\'s kernel rejects its connections', () => {
    for (const t of [T.ServiceLB, T.AffinityLearn]) expect(forFrontend(dp.flows, frontends.empty, t)).toEqual([]);
    expect(dp.groups).toHaveLength(Object.values(frontends).reduce((n, f) => n + (f.endpoints.length ? 1 : 0) + (f.externalEndpoints?.length ? 1 : 0), 0));
  });

  it('a frontend whose endpoints are all elsewhere (internalTrafficPolicy Local) drops its connections in OVS', () => {
    const f = fe('default/itp:http', 'ClusterIP', '10.96.0.60', 'TCP', 80, [], { reject: false });
    const flows = forFrontend(serviceDatapath(node, { frontends: [f], nodePorts: [], healthChecks: [] }, new GroupIds()).flows, f, T.ServiceLB);
    expect(flows.map((x) => [x.priority, x.actions])).toEqual([[ServicePriority.normal, []]]);
  });

  it('externalTrafficPolicy Local, node port: the gateway\'s traffic to every endpoint, the rest to the local ones or nowhere', () => {
    for (const [f, external] of [[frontends.npLocal, [localA]], [frontends.npLocalNone, undefined]] as const) {
      const flows = lb(f);
      const cluster = flows.find((x) => x.match?.nw_src === node.gatewayIp)!;
      expect(cluster.priority).toBe(ServicePriority.clusterSource);
      expectGroupOf(groupsOf(cluster)[0]!, f.endpoints);
      // Node ports reach OVS from the node's kernel only: local pods' traffic has no variant of its own.
      expect(flows.filter((x) => x.match?.reg0 !== undefined)).toEqual([]);
      const rest = flows.filter((x) => x.priority === ServicePriority.normal);
      expect(rest.map((x) => x.match)).toEqual([{ protocol: 'tcp', nw_dst: f.ip, tp_dst: f.port }]);
      if (external) expectGroupOf(groupsOf(rest[0]!)[0]!, [...external]);
      else expect(rest[0]!.actions).toEqual([]);
      expect(flows).toHaveLength(2);
    }
  });

  it('externalTrafficPolicy Local, external address: the gateway\'s and local pods\' traffic to every endpoint, the rest to the local ones or nowhere', () => {
    for (const [f, external] of [[frontends.extLocal, [localB]], [frontends.extLocalNone, undefined]] as const) {
      const flows = lb(f);
      const cluster = flows.filter((x) => x.priority === ServicePriority.clusterSource);
      expect(cluster.map((x) => x.match)).toEqual([
        { protocol: 'tcp', nw_dst: f.ip, tp_dst: f.port, nw_src: node.gatewayIp },
        { protocol: 'tcp', nw_dst: f.ip, tp_dst: f.port, ...matchMarks(FromLocalPod) },
      ]);
      for (const x of cluster) expectGroupOf(groupsOf(x)[0]!, f.endpoints);
      expect(groupsOf(cluster[0]!)).toEqual(groupsOf(cluster[1]!));
      const rest = flows.filter((x) => x.priority === ServicePriority.normal);
      expect(rest).toHaveLength(1);
      if (external) expectGroupOf(groupsOf(rest[0]!)[0]!, [...external]);
      else expect(rest[0]!.actions).toEqual([]);
    }
  });

  it('translates each endpoint once, marking connections to local pods for delivery by the bridge, and a pod reaching itself for hairpin', () => {
    const dnat = dp.flows.filter((f) => f.table === T.EndpointDNAT && f.priority !== 0);
    const hairpinMatches = dnat.filter((f) => f.match?.nw_src !== undefined).map((f) => `${f.match!.protocol} ${f.match!.nw_src}`);
    // Local endpoints only, per protocol they serve: 10.244.1.5 behind TCP frontends, 10.244.1.6 too.
    expect(hairpinMatches.sort()).toEqual(['tcp 10.244.1.5', 'tcp 10.244.1.6']);
    for (const f of dnat) {
      const ct = f.actions.find((a) => a.type === 'ct')!;
      const ip = (ct as { nat: { addr: string } }).nat.addr;
      expect(ct).toMatchObject({ type: 'ct', commit: true, zone: CT_ZONE, table: T.Hairpin, nat: { type: 'dst', addr: ip } });
      expect(f.match).toMatchObject(matchMarks({ field: EndpointIpField, value: ipNumber(ip) }, { field: EndpointPortField, value: 8080 }));
      const local = ip.startsWith('10.244.1.');
      expect([ip, f.actions.some((a) => a.type === 'load' && a.dst === 'reg0[9]')]).toEqual([ip, local]);
      const mark = (ct as { exec: Array<{ value: number }> }).exec[0]!.value;
      expect([ip, f.match?.nw_src, mark]).toEqual([ip, f.match?.nw_src, f.match?.nw_src ? 0x3 : 0x1]);
    }
    const hairpin = dp.flows.filter((f) => f.table === T.Hairpin && f.priority !== 0);
    expect(hairpin).toHaveLength(1);
    expect(hairpin[0]!.actions).toContainEqual(expect.objectContaining({ type: 'ct', commit: true, nat: { type: 'src', addr: HAIRPIN_VIRTUAL_IP }, table: T.exit }));
    // An endpoint behind a TCP and a UDP frontend is translated for each protocol.
    const remoteAFlows = dnat.filter((f) => (f.actions.find((a) => a.type === 'ct') as { nat: { addr: string } }).nat.addr === remoteA.ip);
    expect(remoteAFlows.map((f) => f.match!.protocol).sort()).toEqual(['sctp', 'tcp', 'udp']);
  });

  it('the first of two frontends claiming the same address, protocol and port wins', () => {
    const other = fe('other/lb:http', 'External', frontends.extLocal.ip, 'TCP', 80, [remoteA]);
    const twice = serviceDatapath(node, { ...state, frontends: [...state.frontends, other] }, new GroupIds());
    const flows = forFrontend(twice.flows, frontends.extLocal, T.ServiceLB);
    expect(flows).toHaveLength(3);
    const groups = new Map(twice.groups.map((g) => [g.id, g]));
    const clusterGroup = groups.get(groupsOf(flows[0]!)[0]!)!;
    expect(clusterGroup.buckets).toHaveLength(frontends.extLocal.endpoints.length);
    expect(frontendKey(other)).toBe(frontendKey(frontends.extLocal));
  });
});

describe('DatapathMemo', () => {
  it('builds what a build without it builds, and hands back the very objects of what did not change', () => {
    const memo = new DatapathMemo();
    const ids = new GroupIds();
    const first = serviceDatapath(node, state, ids, memo);
    expect(first).toEqual(serviceDatapath(node, state, new GroupIds()));
    const changed = { ...frontends.plain, endpoints: [localA] };
    const next = { ...state, frontends: state.frontends.map((f) => (f === frontends.plain ? changed : f)) };
    const second = serviceDatapath(node, next, ids, memo);
    expect(second).toEqual(serviceDatapath(node, next, new GroupIds()));
    // The untouched frontend's flows are the same objects (the writer renders them once); the changed one's are new.
    const same = (dp: ReturnType<typeof serviceDatapath>, f: ServiceFrontend): Flow[] => forFrontend(dp.flows, f, T.ServiceLB);
    expect(same(second, frontends.udpAffinity)[0]).toBe(same(first, frontends.udpAffinity)[0]);
    expect(second.groups.find((g) => g.buckets.length === 1 && g.id === groupsOf(same(second, changed)[0]!)[0])).toBeDefined();
    expect(same(second, changed)[0]).not.toBe(same(first, frontends.plain)[0]);
  });
});

describe('GroupIds', () => {
  it('derives ids from the keys: stable across calls, the same in a new instance (a restarted agent), unique', () => {
    const ids = new GroupIds();
    const first = ids.assign(['b', 'a', 'c']);
    expect(new Set(first.values()).size).toBe(3);
    for (const id of first.values()) expect(ownsGroup(id)).toBe(true);
    const again = ids.assign(['c', 'a', 'b', 'd']);
    for (const k of ['a', 'b', 'c']) expect(again.get(k)).toBe(first.get(k));
    const freed = ids.assign(['a', 'c', 'd', 'e']);
    expect(freed.has('b')).toBe(false);
    expect(new Set(freed.values()).size).toBe(freed.size);
    // What a restarted agent assigns from scratch is what the running one had.
    expect(new GroupIds().assign(['e', 'd', 'c', 'a'])).toEqual(freed);
    // The returned map is a copy.
    freed.clear();
    expect(ids.assign(['a']).get('a')).toBe(first.get('a'));
  });

  it('gives distinct ids to many keys', () => {
    const keys = Array.from({ length: 20_000 }, (_, i) => `TCP/10.96.${i >> 8}.${i & 255}:80|cluster`);
    const ids = new GroupIds().assign(keys);
    expect(new Set(ids.values()).size).toBe(keys.length);
  });

  it('keeps a frontend\'s group when other frontends come and go', () => {
    const ids = new GroupIds();
    const groupOf = (dp: ReturnType<typeof serviceDatapath>, f: ServiceFrontend): number => groupsOf(forFrontend(dp.flows, f, T.ServiceLB)[0]!)[0]!;
    const before = serviceDatapath(node, state, ids);
    const without = serviceDatapath(node, { ...state, frontends: state.frontends.filter((f) => f !== frontends.plain) }, ids);
    expect(groupOf(without, frontends.udpAffinity)).toBe(groupOf(before, frontends.udpAffinity));
    expect(without.groups.some((g) => g.id === groupOf(before, frontends.plain))).toBe(false);
    const added = fe('default/new:http', 'ClusterIP', '10.96.0.99', 'TCP', 80, [remoteB]);
    const after = serviceDatapath(node, { ...state, frontends: [...state.frontends.filter((f) => f !== frontends.plain), added] }, ids);
    expect(ownsGroup(groupOf(after, added))).toBe(true);
    expect(groupOf(after, frontends.npLocal)).toBe(groupOf(before, frontends.npLocal));
  });
});

describe('serviceDatapath: client affinity', () => {
  const learnFlow = (dp: ReturnType<typeof serviceDatapath>, f: ServiceFrontend): Flow | undefined => forFrontend(dp.flows, f, T.AffinityLearn)[0];
  const learnedCookieOf = (f: Flow): bigint => BigInt(/cookie=(0x[0-9a-f]+)/.exec(learnText(f)!)![1]!);

  it.each<[ServiceFrontend['protocol'], number, string]>([
    ['TCP', 6, 'NXM_OF_TCP_DST[]'],
    ['UDP', 17, 'NXM_OF_UDP_DST[]'],
    ['SCTP', 132, 'OXM_OF_SCTP_DST[]'],
  ])('%s: learns client, frontend and endpoint into SessionAffinity with the frontend\'s idle timeout', (protocol, proto, dst) => {
    const f = fe('default/a:p', 'ClusterIP', '10.96.0.50', protocol, 5000, [remoteA, remoteB], { affinitySeconds: 77 });
    const dp = serviceDatapath(node, { frontends: [f], nodePorts: [], healthChecks: [] }, new GroupIds());
    const learn = learnFlow(dp, f)!;
    const cookie = learnedCookieOf(learn);
    expect(learn.actions.map((a) => renderActions([a]))).toEqual([
      `learn(table=${T.SessionAffinity},idle_timeout=77,priority=${ServicePriority.normal},delete_learned,cookie=0x${cookie.toString(16)},eth_type=0x800,nw_proto=0x${proto.toString(16)},` +
        `NXM_OF_IP_SRC[],NXM_OF_IP_DST[],${dst},load:NXM_NX_REG3[]->NXM_NX_REG3[],load:NXM_NX_REG4[0..15]->NXM_NX_REG4[0..15],load:0x1->NXM_NX_REG4[16])`,
      renderActions([{ type: 'resubmit', table: T.EndpointDNAT }]),
    ]);
    // A day of affinity (Kubernetes' maximum) is capped to OpenFlow's 16-bit timeout, never wrapped.
    const day = serviceDatapath(node, { frontends: [{ ...f, affinitySeconds: 86_400 }], nodePorts: [], healthChecks: [] }, new GroupIds());
    expect(learnText(learnFlow(day, f)!)).toContain(',idle_timeout=65535,');
    // Learned flows have their own owner: no sync of the proxy's scope removes them.
    expect(decodeCookie(cookie).owner).toBe(CookieOwner.serviceAffinity);
    expect(selectorMatches(serviceScope(), cookie)).toBe(false);
    expect(decodeCookie(LEARNED_COOKIE).owner).toBe(CookieOwner.serviceAffinity);
    // The group hands its choice to the learn table; a client with an affinity skips the group.
    const chosen = forFrontend(dp.flows, f, T.ServiceLB).find((x) => x.priority === ServicePriority.affinityChosen)!;
    expect(chosen.match).toMatchObject(matchMarks({ field: AffinityChosenField, value: 1 }));
    expect(chosen.actions).toEqual([{ type: 'resubmit', table: T.EndpointDNAT }]);
    for (const g of dp.groups) for (const b of g.buckets) expect(b.actions[b.actions.length - 1]).toEqual({ type: 'resubmit', table: T.AffinityLearn });
    // New connections look up the learned flows before load balancing.
    const entry = dp.flows.find((x) => x.table === T.Entry && x.priority === ServicePriority.normal)!;
    expect(entry.actions).toEqual([{ type: 'resubmit', table: T.SessionAffinity }, { type: 'resubmit', table: T.ServiceLB }]);
  });

  it('frontends without affinity learn nothing', () => {
    const dp = serviceDatapath(node, state, new GroupIds());
    expect(learnFlow(dp, frontends.plain)).toBeUndefined();
    expect(forFrontend(dp.flows, frontends.plain, T.ServiceLB).map((f) => f.priority)).toEqual([ServicePriority.normal]);
  });

  it('changes the learned cookie (so OVS forgets what was learned) when the endpoint set changes, and not otherwise', () => {
    const ids = new GroupIds();
    const base = frontends.udpAffinity;
    const cookieWith = (f: ServiceFrontend, others: ServiceFrontend[] = [], round = node.round): bigint =>
      learnedCookieOf(learnFlow(serviceDatapath({ ...node, round }, { frontends: [f, ...others], nodePorts: [], healthChecks: [] }, ids), f)!);
    const c0 = cookieWith(base);
    // Same endpoints: same cookie, whatever else changes (other frontends, the agent's round, the timeout).
    expect(cookieWith(base, [frontends.plain, frontends.npLocal])).toBe(c0);
    expect(cookieWith(base, [], node.round + 1)).toBe(c0);
    expect(cookieWith({ ...base, affinitySeconds: 20 })).toBe(c0);
    // An endpoint gone, added, or moved to another port: another cookie.
    expect(cookieWith({ ...base, endpoints: [remoteA] })).not.toBe(c0);
    expect(cookieWith({ ...base, endpoints: [remoteA, remoteB, localA] })).not.toBe(c0);
    expect(cookieWith({ ...base, endpoints: [remoteA, { ...remoteB, port: 8081 }] })).not.toBe(c0);
    expect(cookieWith(base)).toBe(c0);
    // Another frontend with the same endpoints learns under its own cookie.
    const twin = { ...base, ip: '10.96.0.77' };
    expect(cookieWith(twin, [base])).not.toBe(c0);
  });

  it('externalTrafficPolicy Local with affinity: one learn flow over both endpoint sets, both groups to the learn table', () => {
    const f = { ...frontends.extLocal, affinitySeconds: 60 };
    const dp = serviceDatapath(node, { frontends: [f], nodePorts: [], healthChecks: [] }, new GroupIds());
    expect(forFrontend(dp.flows, f, T.AffinityLearn)).toHaveLength(1);
    expect(dp.groups).toHaveLength(2);
    for (const g of dp.groups) for (const b of g.buckets) expect(b.actions[b.actions.length - 1]).toEqual({ type: 'resubmit', table: T.AffinityLearn });
    const local = serviceDatapath(node, { frontends: [{ ...f, externalEndpoints: [] }], nodePorts: [], healthChecks: [] }, new GroupIds());
    expect(learnedCookieOf(forFrontend(local.flows, f, T.AffinityLearn)[0]!)).not.toBe(learnedCookieOf(forFrontend(dp.flows, f, T.AffinityLearn)[0]!));
  });
});
