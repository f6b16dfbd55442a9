import { createHash } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import type { Action, Flow, Group, Match, SyncRequest } from '../../ovs/openflow/index.js';
import { CookieOwner, CookieScheme } from '../../ovs/openflow/index.js';
import { KeptFromLast } from '../../util/generations.js';
import {
  CT_SNAT_ZONE,
  CT_ZONE,
  FromLocalPod,
  HAIRPIN_VIRTUAL_IP,
  Hairpin,
  RewriteMac,
  SERVICE_CT_MARK,
  loadField,
  loadMark,
  matchMarks,
} from '../../primary/pipeline/index.js';
import type { L4Protocol, NodeServices, ServiceEndpoint, ServiceFrontend } from '../model/types.js';
import {
  AffinityChosenField,
  EndpointIpField,
  EndpointPortField,
  FIRST_GROUP_ID,
  LAST_GROUP_ID,
  HAIRPIN_CT_MARK, ServiceCookies, ServicePriority, ServiceTable, ownsGroup, serviceScope } from './layout.js';

/** What the Service flows need to know of the node. */
export interface ServiceNode {
  round: number;
  /** Traffic from this address is the node's own, or masqueraded by it: it is cluster traffic. */
  gatewayIp: string;
  /**
   * This node's pods: translated connections to them are delivered by this bridge. None in chained mode, where
   * the pipeline routes every packet for a local pod to it (its MAC rewritten) anyway.
   */
  podCidr?: string;
}

const hash32 = (text: string): number => createHash('sha1').update(text).digest().readUInt32BE(0);

/**
 * Group ids per frontend variant: derived from the variant's key (probing on past a taken id), so that a restarted
 * agent gives its groups the ids they already have and rewrites none of them; an id stays while its key does.
 */
export class GroupIds {
  private readonly ids = new Map<string, number>();
  private readonly taken = new Set<number>();

  /** The ids of exactly `keys` (others are released). */
  assign(keys: Iterable<string>): Map<string, number> {
    const want = new Set(keys);
    for (const [k, id] of this.ids) {
      if (!want.has(k)) {
        this.ids.delete(k);
        this.taken.delete(id);
      }
    }
    const span = LAST_GROUP_ID - FIRST_GROUP_ID + 1;
    for (const k of [...want].sort()) {
      if (this.ids.has(k)) continue;
      if (this.taken.size >= span) throw new RangeError('out of Service group ids');
      let id = FIRST_GROUP_ID + (hash32(k) % span);
      while (this.taken.has(id)) id = id === LAST_GROUP_ID ? FIRST_GROUP_ID : id + 1;
      this.ids.set(k, id);
      this.taken.add(id);
    }
    return new Map(this.ids);
  }
}

const PROTO: Record<L4Protocol, { match: 'tcp' | 'udp' | 'sctp'; number: number; dstField: string }> = {
  TCP: { match: 'tcp', number: 6, dstField: 'NXM_OF_TCP_DST[]' },
  UDP: { match: 'udp', number: 17, dstField: 'NXM_OF_UDP_DST[]' },
  SCTP: { match: 'sctp', number: 132, dstField: 'OXM_OF_SCTP_DST[]' },
};

const ipNumber = (ip: string): number => ipaddr.IPv4.parse(ip).toByteArray().reduce((a, b) => a * 256 + b, 0);

export const frontendKey = (f: Pick<ServiceFrontend, 'protocol' | 'ip' | 'port'>): string => `${f.protocol}/${f.ip}:${f.port}`;

const frontendMatch = (f: ServiceFrontend): Match => ({ protocol: PROTO[f.protocol].match, nw_dst: f.ip, tp_dst: f.port });

const endpointSet = (eps: readonly ServiceEndpoint[]): string => eps.map((e) => `${e.ip}:${e.port}`).join(',');

/**
 * Learned affinities carry a cookie per frontend and endpoint set: when the set changes the learn flow's cookie
 * changes, and OVS deletes what the old one learned (clients re-balance instead of sticking to a gone endpoint).
 */
function learnedCookie(frontend: string, eps: readonly ServiceEndpoint[]): bigint {
  const h = createHash('sha1').update(endpointSet(eps)).digest().readUInt16BE(0);
  const object = (BigInt(hash32(frontend) & 0xff_ffff) << 16n) | BigInt(h);
  return new CookieScheme(CookieOwner.serviceAffinity, 0).cookie(object);
}

function learnAction(f: ServiceFrontend, cookie: bigint): Action {
  const p = PROTO[f.protocol];
  const endpointPort = `NXM_NX_REG${EndpointPortField.reg}[${EndpointPortField.start}..${EndpointPortField.end}]`;
  return {
    type: 'learn',
    table: ServiceTable.SessionAffinity,
    // An OpenFlow timeout has 16 bits; Kubernetes allows up to a day (86400 s): capped, never wrapped.
    idleTimeout: Math.min(f.affinitySeconds ?? 0, MAX_OPENFLOW_TIMEOUT),
    priority: ServicePriority.normal,
    deleteLearned: true,
    cookie,
    specs: [
      { match: 'eth_type', from: { value: 0x800 } },
      { match: 'nw_proto', from: { value: p.number } },
      { match: 'NXM_OF_IP_SRC[]' },
      { match: 'NXM_OF_IP_DST[]' },
      { match: p.dstField },
      { load: `NXM_NX_REG${EndpointIpField.reg}[]`, from: `NXM_NX_REG${EndpointIpField.reg}[]` },
      { load: endpointPort, from: endpointPort },
      { load: `NXM_NX_REG${AffinityChosenField.reg}[${AffinityChosenField.start}]`, from: { value: 1 } },
    ],
  };
}

const MAX_OPENFLOW_TIMEOUT = 0xffff;

/** selection_method_param of a dp_hash group: hash algorithm in the upper 32 bits (0: OVS_HASH_ALG_L4), basis 0. */
const DP_HASH_L4 = 0;

/** The select group of one frontend variant: a bucket per endpoint, each naming it in reg3/reg4. */
function selectGroup(id: number, eps: readonly ServiceEndpoint[], next: number): Group {
  return {
    id,
    type: 'select',
    // The datapath hashes the 5-tuple (the default, symmetric hash leaves UDP ports out: one client, one endpoint).
    selectionMethod: 'dp_hash',
    selectionMethodParam: DP_HASH_L4,
    buckets: eps.map((e) => ({ weight: 100, actions: [loadField(EndpointIpField, ipNumber(e.ip)), loadField(EndpointPortField, e.port), { type: 'resubmit', table: next }] })),
  };
}

/**
 * The flows and groups of each frontend and endpoint as last built, kept while they stay the same: unchanged
 * objects are rendered once by the writer (it caches per object), so a change costs what changed, not the whole
 * node's Services. Holds what the last build used only.
 */
export class DatapathMemo {
  private readonly kept = new KeptFromLast<{ own: Flow[]; groups: Group[] }>();

  get(key: string, make: () => { own: Flow[]; groups: Group[] }): { own: Flow[]; groups: Group[] } {
    return this.kept.keep(key, this.kept.peek(key) ?? make());
  }

  /** Ends a build: what it did not ask for is forgotten. */
  settle(): void {
    this.kept.settle();
  }
}

export interface ServiceDatapath {
  flows: Flow[];
  groups: Group[];
}

/** The proxy's flows and groups for a node's Service state (pure). */
export function serviceDatapath(node: ServiceNode, state: NodeServices, groupIds: GroupIds, memo = new DatapathMemo()): ServiceDatapath {
  const cookies = new ServiceCookies(node.round);
  const flows: Flow[] = [];
  let into = flows;
  const add = (table: number, priority: number, match: Match, actions: Action[], object = 0): void => {
    into.push({ table, priority, cookie: cookies.cookie(object), match, actions });
  };
  /** The flows `build` adds, and the groups it returns, for `key`: built once while the key stays the same. */
  const part = (key: string, build: () => Group[]): Group[] => {
    const made = memo.get(`${node.round}|${node.gatewayIp}|${node.podCidr ?? ''}|${key}`, () => {
      const own: Flow[] = [];
      into = own;
      const groups = build();
      into = flows;
      return { own, groups };
    });
    flows.push(...made.own);
    return made.groups;
  };
  const T = ServiceTable;
  const serviceMark = (m: { value: number; mask: number }): Action => ({ type: 'set_field', field: 'ct_mark', value: m.value, mask: m.mask });
  const both = { value: SERVICE_CT_MARK.value | HAIRPIN_CT_MARK.value, mask: SERVICE_CT_MARK.mask | HAIRPIN_CT_MARK.mask };
  const original = { new: false, trk: true, rpl: false };
  // The Conntrack table translated the destination of later packets already; the ones for a local pod still
  // need the local delivery (else they would go to the gateway), and a hairpin's also its source translation.
  add(T.Entry, ServicePriority.establishedHairpin, { protocol: 'ip', ct_state: original, ct_mark: both }, [
    loadMark(RewriteMac),
    loadMark(Hairpin),
    { type: 'ct', table: T.exit, zone: CT_SNAT_ZONE, nat: true },
  ]);
  if (node.podCidr) add(T.Entry, ServicePriority.establishedLocal, { protocol: 'ip', ct_state: original, ct_mark: { ...SERVICE_CT_MARK }, nw_dst: node.podCidr }, [loadMark(RewriteMac), { type: 'goto_table', table: T.exit }]);
  add(T.Entry, ServicePriority.established, { protocol: 'ip', ct_state: { new: false, trk: true } }, [{ type: 'goto_table', table: T.exit }]);
  // A reply to a hairpin connection, its source translation undone by the Conntrack table: now the destination's.
  add(T.Entry, ServicePriority.hairpinReply, { protocol: 'ip', ct_zone: CT_SNAT_ZONE, ct_state: { trk: true, rpl: true } }, [
    loadMark(RewriteMac),
    loadMark(Hairpin),
    { type: 'ct', table: T.exit, zone: CT_ZONE, nat: true },
  ]);
  add(T.Entry, ServicePriority.normal, { protocol: 'ip', ct_state: { new: true, trk: true } }, [
    { type: 'resubmit', table: T.SessionAffinity },
    { type: 'resubmit', table: T.ServiceLB },
  ]);
  add(T.SessionAffinity, ServicePriority.miss, {}, []);
  add(T.ServiceLB, ServicePriority.miss, {}, [{ type: 'goto_table', table: T.exit }]);
  add(T.AffinityLearn, ServicePriority.miss, {}, []);
  add(T.EndpointDNAT, ServicePriority.miss, {}, []);
  add(T.Hairpin, ServicePriority.miss, {}, [{ type: 'goto_table', table: T.exit }]);

  // One frontend per address, protocol and port (two Services claiming the same external address: the first wins).
  const frontends = new Map<string, ServiceFrontend>();
  for (const f of state.frontends) if (!frontends.has(frontendKey(f))) frontends.set(frontendKey(f), f);
  const variants = new Map<string, ServiceEndpoint[]>();
  for (const [k, f] of frontends) {
    if (f.endpoints.length) variants.set(`${k}|cluster`, f.endpoints);
    if (f.externalEndpoints?.length) variants.set(`${k}|external`, f.externalEndpoints);
  }
  const ids = groupIds.assign(variants.keys());
  const groups: Group[] = [];
  const endpoints = new Map<string, { protocol: L4Protocol; ep: ServiceEndpoint }>();

  function frontendFlows(k: string, f: ServiceFrontend, cluster: number | undefined, external: number | undefined): Group[] {
    const own: Group[] = [];
    const m = frontendMatch(f);
    const affinity = f.affinitySeconds !== undefined;
    const next = affinity ? T.AffinityLearn : T.EndpointDNAT;
    for (const [id, eps] of [
      [cluster, f.endpoints],
      [external, f.externalEndpoints ?? []],
    ] as const) {
      if (id === undefined) continue;
      own.push(selectGroup(id, eps, next));
    }
    const object = cluster ?? external ?? 0;
    if (affinity && object) {
      const all = [...f.endpoints, ...(f.externalEndpoints ?? [])];
      add(T.AffinityLearn, ServicePriority.normal, m, [learnAction(f, learnedCookie(k, all)), { type: 'resubmit', table: T.EndpointDNAT }], object);
      add(T.ServiceLB, ServicePriority.affinityChosen, { ...m, ...matchMarks({ field: AffinityChosenField, value: 1 }) }, [{ type: 'resubmit', table: T.EndpointDNAT }], object);
    }
    const toCluster: Action[] = cluster !== undefined ? [{ type: 'group', id: cluster }] : [];
    if (!f.externalEndpoints) {
      // No endpoint anywhere: no flow, the node's kernel rejects the connection (src/services/host). Endpoints only
      // elsewhere (internalTrafficPolicy Local): dropped, as kube-proxy does.
      if (cluster !== undefined) add(T.ServiceLB, ServicePriority.normal, m, toCluster, object);
      else if (!f.reject) add(T.ServiceLB, ServicePriority.normal, m, [], object);
      return own;
    }
    // externalTrafficPolicy Local: the node's own and masqueraded traffic (from the gateway address), and for
    // external addresses the local pods' traffic, go to every endpoint; the rest, with its client address, to
    // the local ones only, or nowhere.
    if (cluster !== undefined) {
      add(T.ServiceLB, ServicePriority.clusterSource, { ...m, nw_src: node.gatewayIp }, toCluster, object);
      if (f.kind === 'External') add(T.ServiceLB, ServicePriority.clusterSource, { ...m, ...matchMarks(FromLocalPod) }, toCluster, object);
    }
    add(T.ServiceLB, ServicePriority.normal, m, external !== undefined ? [{ type: 'group', id: external }] : [], object);
    return own;
  }

  for (const [k, f] of frontends) {
    const cluster = ids.get(`${k}|cluster`);
    const external = ids.get(`${k}|external`);
    for (const eps of [f.endpoints, f.externalEndpoints ?? []]) for (const ep of eps) endpoints.set(`${f.protocol}/${ep.ip}:${ep.port}`, { protocol: f.protocol, ep });
    groups.push(...part(JSON.stringify([f, cluster, external]), () => frontendFlows(k, f, cluster, external)));
  }

  for (const { protocol, ep } of endpoints.values()) {
    part(`endpoint ${protocol}/${ep.ip}:${ep.port}/${ep.local}`, () => {
      const m: Match = { protocol: PROTO[protocol].match, ...matchMarks({ field: EndpointIpField, value: ipNumber(ep.ip) }, { field: EndpointPortField, value: ep.port }) };
      const dnat = (mark: { value: number; mask: number }): Action => ({ type: 'ct', commit: true, table: T.Hairpin, zone: CT_ZONE, nat: { type: 'dst', addr: ep.ip, port: ep.port }, exec: [serviceMark(mark)] });
      if (!ep.local) {
        add(T.EndpointDNAT, ServicePriority.normal, m, [dnat(SERVICE_CT_MARK)]);
        return [];
      }
      // A local endpoint is delivered by this bridge: L3Forwarding rewrites the MACs as for a routed packet.
      add(T.EndpointDNAT, ServicePriority.normal, m, [loadMark(RewriteMac), dnat(SERVICE_CT_MARK)]);
      // The pod itself: marked so that this and every later packet is translated at the source too.
      add(T.EndpointDNAT, ServicePriority.clusterSource, { ...m, nw_src: ep.ip }, [loadMark(RewriteMac), dnat(both)]);
      return [];
    });
  }
  add(T.Hairpin, ServicePriority.normal, { protocol: 'ip', ct_mark: both }, [
    loadMark(Hairpin),
    { type: 'ct', commit: true, table: T.exit, zone: CT_SNAT_ZONE, nat: { type: 'src', addr: HAIRPIN_VIRTUAL_IP }, exec: [serviceMark(SERVICE_CT_MARK)] },
  ]);
  memo.settle();
  return { flows, groups };
}

/** A FlowWriter.sync request making the bridge's Service flows and groups exactly `dp`. */
export function serviceSync(dp: ServiceDatapath): SyncRequest {
  return { cookie: serviceScope(), flows: dp.flows, groups: { desired: dp.groups, owns: ownsGroup } };
}
