import { CookieOwner, decodeCookie, makeCookie, selectorMatches } from '../../../src/ovs/openflow/cookie.js';
import { renderFlow, type Flow } from '../../../src/ovs/openflow/flow.js';
import { Ofctl, canonicalFlows } from '../../../src/ovs/openflow/ofctl.js';
import { canonicalInput, flowKey } from '../../../src/ovs/openflow/sync.js';
import {
  GLOBAL_VIRTUAL_MAC,
  ObjectKind,
  Priority,
  SEAMS,
  TABLES,
  Table,
  baseFlows,
  checkState,
  objectKind,
  peerFlows,
  peerObject,
  peerScope,
  pipelineFlows,
  pipelineScope,
  pipelineSync,
  podFlows,
  podObject,
  podRemoval,
  podScope,
  tableName,
  type NodeConfig,
  type PipelineState,
} from '../../../src/primary/pipeline/index.js';

const node: NodeConfig = {
  mode: 'encap',
  round: 7,
  gatewayOfport: 2,
  tunnelOfport: 1,
  gatewayIp: '10.244.1.1',
  gatewayMac: '0a:00:c0:a8:4d:01',
  podCidr: '10.244.1.0/24',
  clusterCidr: '10.244.0.0/16',
};
const pods = [
  { ofport: 3, ip: '10.244.1.2', mac: '02:00:00:00:01:01' },
  { ofport: 4, ip: '10.244.1.3', mac: '02:00:00:00:02:01' },
  { ofport: 9, ip: '10.244.1.20', mac: '02:00:00:00:09:01' },
];
const peers = [
  { index: 0, nodeIp: '192.168.77.2', podCidr: '10.244.2.0/24', gatewayIp: '10.244.2.1' },
  { index: 5, nodeIp: '192.168.77.3', podCidr: '10.244.3.0/24', gatewayIp: '10.244.3.1' },
];
const state: PipelineState = { node, pods, peers };
const noEncap: PipelineState = { ...state, node: { ...node, mode: 'noEncap' } };

/** Tables a flow can send a packet to next. */
function nextTables(f: Flow): number[] {
  return f.actions.flatMap((a) => (a.type === 'goto_table' ? [a.table] : (a.type === 'ct' || a.type === 'resubmit') && a.table !== undefined ? [a.table] : []));
}

const inTable = (flows: Flow[], t: number): Flow[] => flows.filter((f) => (f.table ?? 0) === t);
const outputs = (f: Flow): string[] => f.actions.flatMap((a) => (a.type === 'output' ? [typeof a.port === 'object' ? a.port.field : String(a.port)] : []));
const sets = (f: Flow, field: string): unknown[] =>
  f.actions.flatMap((a) => (a.type === 'set_field' && a.field === field ? [a.value] : a.type === 'mod_dl_dst' && field === 'eth_dst' ? [a.mac] : a.type === 'mod_dl_src' && field === 'eth_src' ? [a.mac] : a.type === 'set_tunnel_dst' && field === 'tun_dst' ? [a.ip] : []));

describe('pipeline tables', () => {
  it('are in a fixed ascending order with unique names and numbers', () => {
    const ids = TABLES.map((t) => t.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(ids.length);
    expect(TABLES.map((t) => t.name)).toEqual([
      'Classifier', 'SpoofGuard', 'ARPResponder', 'Conntrack', 'ConntrackState', 'Service', 'EgressPolicy', 'ServiceChain',
      'L3Forwarding', 'L2ForwardingCalc', 'IngressPolicy', 'ConntrackCommit', 'Output',
    ]);
    expect(tableName(Table.L3Forwarding)).toBe('L3Forwarding');
    expect(tableName(3)).toBeUndefined();
  });

  it('reserve seam ranges that hold no pipeline table but their entry, each exiting to the next stage', () => {
    for (const seam of Object.values(SEAMS)) {
      const inside = TABLES.filter((t) => t.id >= seam.first && t.id <= seam.last);
      expect(inside.map((t) => t.id)).toEqual([seam.first]);
      expect(inside[0]!.seam).toBe(true);
      expect(TABLES.find((t) => t.id > seam.last)?.id).toBe(seam.exit);
    }
    expect(TABLES.filter((t) => t.seam).map((t) => t.name)).toEqual(['Service', 'EgressPolicy', 'ServiceChain', 'IngressPolicy']);
  });
});

describe('pipeline flows', () => {
  const flows = pipelineFlows(state);

  it.each([
    ['encap', state],
    ['noEncap', noEncap],
  ])('%s: every table has flows and a table-miss flow, every goto goes forward, and every table is reachable from 0', (_, s) => {
    const all = pipelineFlows(s);
    for (const t of TABLES) {
      expect(inTable(all, t.id).length).toBeGreaterThan(0);
      expect(inTable(all, t.id).filter((f) => f.priority === Priority.miss)).toHaveLength(1);
    }
    for (const f of all) {
      expect(tableName(f.table ?? 0)).toBeDefined();
      for (const n of nextTables(f)) {
        expect(n).toBeGreaterThan(f.table ?? 0);
        expect(tableName(n)).toBeDefined();
      }
    }
    const reached = new Set([0]);
    const queue = [0];
    while (queue.length) {
      const t = queue.shift()!;
      for (const n of inTable(all, t).flatMap(nextTables)) {
        if (!reached.has(n)) {
          reached.add(n);
          queue.push(n);
        }
      }
    }
    expect([...reached].sort((a, b) => a - b)).toEqual(TABLES.map((t) => t.id));
  });

  it('carry the owner, round and object of what they were made for', () => {
    const base = baseFlows(node);
    for (const f of base) expect(decodeCookie(f.cookie!)).toEqual({ owner: CookieOwner.primary, round: 7, object: 0n });
    for (const p of pods) {
      const mine = podFlows(node, p);
      expect(mine.length).toBeGreaterThan(0);
      for (const f of mine) expect(decodeCookie(f.cookie!)).toEqual({ owner: CookieOwner.primary, round: 7, object: BigInt(p.ofport) });
    }
    for (const p of peers) {
      for (const f of peerFlows(node, p)) {
        const { object } = decodeCookie(f.cookie!);
        expect(object).toBe(peerObject(p.index));
        expect(objectKind(object)).toBe(ObjectKind.peer);
      }
    }
    expect(flows).toHaveLength(base.length + pods.flatMap((p) => podFlows(node, p)).length + peers.flatMap((p) => peerFlows(node, p)).length);
    expect(pipelineFlows({ ...state, node: { ...node, round: 8 } }).map((f) => decodeCookie(f.cookie!).round)).toEqual(flows.map(() => 8));
  });

  it('are selected by their scopes and nothing else', () => {
    const scope = pipelineScope();
    for (const f of flows) expect(selectorMatches(scope, f.cookie!)).toBe(true);
    // Any round; never another owner or the Service and policy kinds.
    expect(selectorMatches(scope, makeCookie(CookieOwner.primary, 999, podObject(12)))).toBe(true);
    expect(selectorMatches(scope, makeCookie(CookieOwner.secondary, 7, 0))).toBe(false);
    expect(selectorMatches(scope, makeCookie(CookieOwner.primary, 7, BigInt(ObjectKind.service) << 32n))).toBe(false);
    expect(selectorMatches(scope, makeCookie(CookieOwner.primary, 7, (BigInt(ObjectKind.policy) << 32n) | 3n))).toBe(false);

    const pod4 = flows.filter((f) => selectorMatches(podScope(4), f.cookie!));
    expect(pod4).toEqual(podFlows(node, pods[1]!));
    expect(flows.filter((f) => selectorMatches(peerScope(5), f.cookie!))).toEqual(peerFlows(node, peers[1]!));
    // A pod's ofport and a peer's index never collide.
    expect(podObject(5)).not.toBe(peerObject(5));
    expect(podRemoval(4)).toEqual({ cookie: podScope(4), flows: [] });
    expect(pipelineSync(state)).toEqual({ cookie: scope, flows });
  });

  it('render to text ovs-ofctl parses, with no two flows sharing table, priority and match', async () => {
    for (const s of [state, noEncap]) {
      const all = pipelineFlows(s);
      const ofctl = new Ofctl('unix:/nonexistent');
      const parsed = await ofctl.parseFlows(all.map(renderFlow));
      expect(parsed.map((p) => [p.table, p.priority])).toEqual(all.map((f) => [f.table ?? 0, f.priority]));
      const canon = await canonicalFlows(ofctl, all.map(canonicalInput));
      const keys = canon.map((c) => flowKey(c.table, c.priority, c.match));
      expect(new Set(keys).size).toBe(keys.length);
    }
  });

  it('let a pod send only IP and ARP from its own addresses', () => {
    for (const p of pods) {
      const guard = inTable(flows, Table.SpoofGuard).filter((f) => f.match?.in_port === p.ofport);
      expect(guard.map((f) => f.match)).toEqual([
        { in_port: p.ofport, protocol: 'ip', dl_src: p.mac, nw_src: p.ip },
        { in_port: p.ofport, protocol: 'arp', dl_src: p.mac, arp_spa: p.ip, arp_sha: p.mac },
      ]);
      expect(guard.map(nextTables)).toEqual([[Table.Conntrack], [Table.ARPResponder]]);
    }
    // Nothing else from any port passes: the table-miss drops.
    expect(inTable(flows, Table.SpoofGuard).find((f) => f.priority === Priority.miss)?.actions).toEqual([]);
    // Tunnel traffic does not go through the spoof guard.
    const tun = inTable(flows, Table.Classifier).find((f) => f.match?.in_port === node.tunnelOfport)!;
    expect(nextTables(tun)).toEqual([Table.Conntrack]);
  });

  it('answer ARP for the gateway, local pods and (encap) peer gateways in OVS, and nothing else', () => {
    const answers = (all: Flow[]): Record<string, unknown> =>
      Object.fromEntries(
        inTable(all, Table.ARPResponder)
          .filter((f) => f.priority !== Priority.miss)
          .map((f) => {
            expect(outputs(f)).toEqual(['IN_PORT']);
            expect(sets(f, 'arp_spa')).toEqual([f.match?.arp_tpa]);
            expect(sets(f, 'eth_src')).toEqual(sets(f, 'arp_sha'));
            return [f.match!.arp_tpa!, sets(f, 'arp_sha')[0]];
          }),
      );
    expect(answers(flows)).toEqual({
      '10.244.1.1': node.gatewayMac,
      ...Object.fromEntries(pods.map((p) => [p.ip, p.mac])),
      '10.244.2.1': GLOBAL_VIRTUAL_MAC,
      '10.244.3.1': GLOBAL_VIRTUAL_MAC,
    });
    expect(answers(pipelineFlows(noEncap))).toEqual({ '10.244.1.1': node.gatewayMac, ...Object.fromEntries(pods.map((p) => [p.ip, p.mac])) });
    // No flow anywhere floods or hands packets to the NORMAL pipeline.
    for (const f of flows) expect(outputs(f).filter((o) => o === 'NORMAL' || o === 'FLOOD' || o === 'ALL')).toEqual([]);
  });

  it('route to peers through the tunnel in encap mode and through the gateway in noEncap mode', () => {
    for (const p of peers) {
      const encapRoutes = inTable(peerFlows(node, p), Table.L3Forwarding);
      expect(encapRoutes.length).toBe(2);
      for (const f of encapRoutes) {
        expect(f.match?.nw_dst).toBe(p.podCidr);
        expect(sets(f, 'tun_dst')).toEqual([p.nodeIp]);
        expect(sets(f, 'eth_dst')).toEqual([GLOBAL_VIRTUAL_MAC]);
        expect(sets(f, 'eth_src')).toEqual([node.gatewayMac]);
      }
      // The kernel decremented the TTL of what it routed; OVS does so for the rest.
      expect(encapRoutes.map((f) => f.actions.some((a) => a.type === 'dec_ttl'))).toEqual([false, true]);
      const direct = peerFlows(noEncap.node, p);
      expect(direct.map((f) => [f.table, f.match?.nw_dst, sets(f, 'eth_dst'), sets(f, 'tun_dst')])).toEqual([[Table.L3Forwarding, p.podCidr, [node.gatewayMac], []]]);
    }
    // The virtual MAC leads to the tunnel port; in noEncap mode nothing refers to a tunnel.
    const l2 = inTable(flows, Table.L2ForwardingCalc).find((f) => f.match?.dl_dst === GLOBAL_VIRTUAL_MAC)!;
    expect(l2.actions).toContainEqual({ type: 'load', value: node.tunnelOfport, dst: 'reg1[]' });
    const direct = pipelineFlows(noEncap);
    expect(direct.some((f) => f.match?.in_port === node.tunnelOfport || JSON.stringify(f.actions).includes(GLOBAL_VIRTUAL_MAC))).toBe(false);
  });

  it('rewrite MACs and decrement the TTL for packets routed to a local pod, and switch the rest by MAC', () => {
    for (const p of pods) {
      const [route] = inTable(podFlows(node, p), Table.L3Forwarding);
      expect(route!.match).toEqual({ protocol: 'ip', reg0: { value: 0x200, mask: 0x200 }, nw_dst: p.ip });
      expect(sets(route!, 'eth_src')).toEqual([node.gatewayMac]);
      expect(sets(route!, 'eth_dst')).toEqual([p.mac]);
      expect(route!.actions.some((a) => a.type === 'dec_ttl')).toBe(true);
      const [l2] = inTable(podFlows(node, p), Table.L2ForwardingCalc);
      expect(l2!.match).toEqual({ dl_dst: p.mac });
      expect(l2!.actions).toContainEqual({ type: 'load', value: p.ofport, dst: 'reg1[]' });
    }
    // The tunnel sets the rewrite mark.
    const tun = inTable(flows, Table.Classifier).find((f) => f.match?.in_port === node.tunnelOfport)!;
    expect(tun.actions).toContainEqual({ type: 'load', value: 1, dst: 'reg0[9]' });
    // Unknown destinations go to the gateway.
    const miss = inTable(flows, Table.L3Forwarding).find((f) => f.priority === Priority.miss)!;
    expect(sets(miss, 'eth_dst')).toEqual([node.gatewayMac]);
  });

  it('track IP in the zone, drop invalid, commit new connections and let established ones skip the policy seams', () => {
    const ct = inTable(flows, Table.Conntrack).find((f) => f.priority !== Priority.miss)!;
    expect(ct.actions).toEqual([{ type: 'ct', table: Table.ConntrackState, zone: 65520, nat: true }]);
    expect(inTable(flows, Table.ConntrackState).find((f) => f.priority !== Priority.miss)).toMatchObject({ match: { ct_state: { inv: true, trk: true } }, actions: [] });
    const commit = inTable(flows, Table.ConntrackCommit).find((f) => f.priority !== Priority.miss)!;
    expect(commit.actions[0]).toEqual({ type: 'ct', commit: true, zone: 65520 });
    for (const seam of [SEAMS.egressPolicy, SEAMS.ingressPolicy]) {
      const bypass = inTable(flows, seam.first).find((f) => f.priority === Priority.establishedBypass)!;
      expect(bypass.match?.ct_state).toEqual({ new: false, trk: true });
      expect(nextTables(bypass)).toEqual([seam.exit]);
    }
    for (const seam of Object.values(SEAMS)) expect(inTable(flows, seam.first).find((f) => f.priority === Priority.miss)!.actions).toEqual([{ type: 'goto_table', table: seam.exit }]);
  });

  it('refuses states that would give conflicting flows', () => {
    const bad: [string, PipelineState][] = [
      ['pod outside the pod CIDR', { ...state, pods: [{ ofport: 3, ip: '10.244.2.9', mac: '02:00:00:00:01:01' }] }],
      ['pod with the gateway IP', { ...state, pods: [{ ofport: 3, ip: '10.244.1.1', mac: '02:00:00:00:01:01' }] }],
      ['pod on the tunnel port', { ...state, pods: [{ ofport: 1, ip: '10.244.1.2', mac: '02:00:00:00:01:01' }] }],
      ['two pods with one IP', { ...state, pods: [pods[0]!, { ...pods[1]!, ip: pods[0]!.ip }] }],
      ['two pods with one MAC', { ...state, pods: [pods[0]!, { ...pods[1]!, mac: pods[0]!.mac.toUpperCase() }] }],
      ['multicast MAC', { ...state, pods: [{ ...pods[0]!, mac: '01:00:5e:00:00:01' }] }],
      ['peer overlapping this node', { ...state, peers: [{ ...peers[0]!, podCidr: '10.244.0.0/23', gatewayIp: '10.244.0.1' }] }],
      ['overlapping peers', { ...state, peers: [peers[0]!, { ...peers[1]!, podCidr: '10.244.2.128/25', gatewayIp: '10.244.2.129' }] }],
      ['two peers with one index', { ...state, peers: [peers[0]!, { ...peers[1]!, index: 0 }] }],
      ['host bits in a CIDR', { ...state, node: { ...node, podCidr: '10.244.1.1/24' } }],
      ['pod CIDR outside the cluster', { ...state, node: { ...node, clusterCidr: '10.245.0.0/16' } }],
    ];
    const refusal = (f: () => unknown): string => {
      try {
        f();
        return 'accepted';
      } catch (e) {
        return e instanceof RangeError ? 'RangeError' : String(e);
      }
    };
    for (const [what, s] of bad) {
      expect([what, refusal(() => checkState(s))]).toEqual([what, 'RangeError']);
      expect([what, refusal(() => pipelineFlows(s))]).toEqual([what, 'RangeError']);
    }
    expect(refusal(() => checkState(state))).toBe('accepted');
  });
});
