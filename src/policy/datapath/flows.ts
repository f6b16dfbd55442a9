// The policy feature's flows, computed from the node's resolved rules: per direction a table per tier, each rule
// a conjunction of (pods it applies to) x (peer addresses) x (ports), so that it costs the sum of its parts in
// flows, not their product. Established connections never get here (the pipeline's bypass).
import { portMasks, renderMatch, type Action, type Flow, type Masked, type Match, type SyncRequest } from '../../ovs/openflow/index.js';
import { FromGateway, loadField, matchMarks } from '../../primary/pipeline/marks.js';
import type { Direction, Protocol, RulePort } from '../model/types.js';
import { addressBlock, coveringCidrs, type AddressBlock } from './addresses.js';
import { POLICY_TABLES, PRIMARY_STAGE, PRIMARY_VERDICTS, PolicyCookies, PolicyPriority, conjId, policyScope, tierTable, VARIANTS, type PolicyStage } from './layout.js';
import type { DatapathRule, NamedPort, PolicyDatapath } from './state.js';

const goto = (table: number): Action => ({ type: 'goto_table', table });
const ovsProtocol = (p: Protocol): 'tcp' | 'udp' | 'sctp' => (p === 'TCP' ? 'tcp' : p === 'UDP' ? 'udp' : 'sctp');

/** A resolved port: a protocol, and a port range (none: every port of the protocol). */
interface PortMatch {
  protocol: Protocol;
  port?: number;
  endPort?: number;
}

/** Numeric ports of a rule, and its named ports resolved against one pod's container ports. */
function resolvePorts(ports: readonly RulePort[], named: readonly NamedPort[] | undefined): PortMatch[] {
  const out: PortMatch[] = [];
  for (const p of ports) {
    if (p.name === undefined) {
      if (p.protocol) out.push({ protocol: p.protocol, ...(p.port !== undefined ? { port: p.port, ...(p.endPort !== undefined ? { endPort: p.endPort } : {}) } : {}) });
      continue;
    }
    for (const n of named ?? []) if (n.name === p.name && (p.protocol === undefined || p.protocol === n.protocol)) out.push({ protocol: n.protocol, port: n.port });
  }
  const seen = new Set<string>();
  return out.filter((m) => {
    const k = `${m.protocol}/${m.port ?? ''}/${m.endPort ?? ''}`;
    return seen.has(k) ? false : (seen.add(k), true);
  });
}

const portsKey = (ports: readonly PortMatch[]): string => ports.map((m) => `${m.protocol}/${m.port ?? ''}/${m.endPort ?? ''}`).sort().join(',');

/** One conjunction of a rule: which pods, which peers (undefined: any), which ports (empty: all). */
interface Variant {
  ofports: number[];
  cidrs?: string[];
  ports: PortMatch[];
}

/**
 * A rule's conjunctions. Without named ports, one. With named ports, the ports depend on the destination pod:
 * ingress rules are split by the applied-to pods' resolved ports, egress rules by the peer pods'.
 */
function variants(rule: DatapathRule): Variant[] {
  const ofports = [...new Set(rule.applied.map((a) => a.ofport))].sort((a, b) => a - b);
  const peerCidrs = (ips: readonly string[], cidrs: readonly string[]): string[] => {
    const blocks: AddressBlock[] = [];
    for (const ip of ips) blocks.push(addressBlock(ip));
    for (const cidr of cidrs) blocks.push(addressBlock(cidr));
    return coveringCidrs(blocks);
  };
  const allPeers = rule.peers.any ? undefined : peerCidrs(rule.peers.pods.map((p) => p.ip), rule.peers.cidrs);
  if (!rule.ports.some((p) => p.name !== undefined)) return [{ ofports, ...(allPeers ? { cidrs: allPeers } : {}), ports: resolvePorts(rule.ports, undefined) }];
  const out = new Map<string, Variant>();
  if (rule.direction === 'Ingress') {
    for (const a of rule.applied) {
      const ports = resolvePorts(rule.ports, a.namedPorts);
      if (!ports.length) continue; // no port of this pod has the name: the rule admits nothing to it
      const k = portsKey(ports);
      const v = out.get(k) ?? { ofports: [], ...(allPeers ? { cidrs: allPeers } : {}), ports };
      v.ofports.push(a.ofport);
      out.set(k, v);
    }
  } else {
    // Peers by address: pods resolve names on themselves; address blocks (and "any") only match numeric ports.
    const byPorts = new Map<string, { ips: string[]; blocks: string[]; any: boolean; ports: PortMatch[] }>();
    const add = (ports: PortMatch[], f: (e: { ips: string[]; blocks: string[]; any: boolean }) => void): void => {
      if (!ports.length) return;
      const k = portsKey(ports);
      const e = byPorts.get(k) ?? { ips: [], blocks: [], any: false, ports };
      f(e);
      byPorts.set(k, e);
    };
    const numeric = resolvePorts(rule.ports, undefined);
    // "Any" peers take the numeric ports anywhere; the peer pods (every pod, for "any") their named ports too.
    if (rule.peers.any) add(numeric, (e) => (e.any = true));
    for (const p of rule.peers.pods) add(resolvePorts(rule.ports, p.namedPorts), (e) => e.ips.push(p.ip));
    if (!rule.peers.any) add(numeric, (e) => e.blocks.push(...rule.peers.cidrs));
    for (const [k, e] of byPorts) out.set(k, { ofports, ...(e.any ? {} : { cidrs: peerCidrs(e.ips, e.blocks) }), ports: e.ports });
  }
  const list = [...out.values()].filter((v) => v.ofports.length && (v.cidrs === undefined || v.cidrs.length));
  if (list.length > VARIANTS) throw new RangeError(`rule ${rule.id}: ${list.length} distinct named-port resolutions (at most ${VARIANTS})`);
  return list.sort((a, b) => (portsKey(a.ports) < portsKey(b.ports) ? -1 : 1));
}

function portAlternatives(ports: readonly PortMatch[]): Match[] {
  return ports.flatMap((p) => {
    const protocol = ovsProtocol(p.protocol);
    if (p.port === undefined) return [{ protocol }];
    return portMasks({ port: p.port, ...(p.endPort !== undefined ? { endPort: p.endPort } : {}) }).map((m: Masked): Match => ({ protocol, tp_dst: m }));
  });
}

/** Where the rule's verdict sends a packet. */
function verdict(rule: DatapathRule, stage: PolicyStage): Action[] {
  const t = stage.tables[rule.direction];
  if (rule.action === 'Deny') return drop(rule.id, rule.direction, stage);
  // A Pass decides nothing: the rule that decides later is recorded.
  if (rule.action === 'Pass') return rule.tier === 'Admin' ? [goto(t.networkPolicy)] : [goto(t.exit)];
  return [...record(rule.id, rule.direction, stage), goto(t.exit)];
}

function record(ruleId: number, direction: Direction, stage: PolicyStage): Action[] {
  return stage.verdicts ? [loadField(stage.verdicts.ruleField[direction], ruleId)] : [];
}

function drop(ruleId: number, direction: Direction, stage: PolicyStage): Action[] {
  return stage.verdicts ? [...record(ruleId, direction, stage), goto(stage.verdicts.dropTable[direction])] : [];
}

const peerMatch = (direction: Direction, cidr: string): Match => (direction === 'Egress' ? { protocol: 'ip', nw_dst: cidr } : { protocol: 'ip', nw_src: cidr });

export function ruleFlows(round: number, rule: DatapathRule, stage: PolicyStage = PRIMARY_STAGE): Flow[] {
  const cookie = new PolicyCookies(round).cookie(rule.id);
  const table = tierTable(rule.direction, rule.tier, stage.tables);
  const appliedMatch = stage.appliedMatch;
  const flows: Flow[] = [];
  variants(rule).forEach((v, i) => {
    const clauses: Match[][] = [v.ofports.map((o) => appliedMatch(rule.direction, o))];
    if (v.cidrs) clauses.push(v.cidrs.map((c) => peerMatch(rule.direction, c)));
    if (v.ports.length) clauses.push(portAlternatives(v.ports));
    if (clauses.length === 1) {
      // No conjunction: one flow per pod. One priority step up, so that it never shares a match and priority with
      // another rule's conjunction clause (OVS cannot mix the two in one flow); only NetworkPolicy rules share a
      // priority, and they all accept.
      for (const m of clauses[0]!) flows.push({ table, priority: rule.priority + 1, cookie, match: { protocol: 'ip', ...m }, actions: verdict(rule, stage) });
      return;
    }
    const id = conjId(rule.id, i);
    clauses.forEach((alternatives, c) => {
      // One action list for the clause's flows (flows are not changed once built; merging makes new lists).
      const actions: Action[] = [{ type: 'conjunction', id, clause: c + 1, clauses: clauses.length }];
      for (const m of alternatives) flows.push({ table, priority: rule.priority, cookie, match: m.protocol ? m : { protocol: 'ip', ...m }, actions });
    });
    flows.push({ table, priority: rule.priority, cookie, match: { protocol: 'ip', conj_id: id }, actions: verdict(rule, stage) });
  });
  return flows;
}

/** Node-wide flows: each tier's table hands what it did not decide to the next; the node may reach its pods. */
export function policyBaseFlows(round: number, nodeAddresses: readonly string[] = []): Flow[] {
  const cookie = new PolicyCookies(round).cookie(0);
  const flows: Flow[] = [];
  for (const direction of ['Egress', 'Ingress'] as const) {
    const t = POLICY_TABLES[direction];
    const f = (table: number, priority: number, match: Match, actions: Action[]): void => void flows.push({ table, priority, cookie, match, actions });
    f(t.admin, PolicyPriority.next, {}, [goto(t.networkPolicy)]);
    f(t.networkPolicy, 0, {}, [goto(t.isolation)]);
    f(t.isolation, 0, {}, [goto(t.baseline)]);
    f(t.baseline, 0, {}, [goto(t.exit)]);
    f(PRIMARY_VERDICTS.dropTable[direction], 0, {}, []);
  }
  // kubelet probes and other traffic of the node itself to its pods.
  for (const ip of [...new Set(nodeAddresses)].sort()) {
    flows.push({ table: POLICY_TABLES.Ingress.admin, priority: PolicyPriority.fromNode, cookie, match: { protocol: 'ip', ...matchMarks(FromGateway), nw_src: ip }, actions: [goto(POLICY_TABLES.Ingress.exit)] });
  }
  return flows;
}

/**
 * Flows of different rules with the same table, priority and match are one flow in OVS: conjunction clauses are
 * merged (one flow, every rule's conjunction action); otherwise the first rule's flow stays (NetworkPolicy rules
 * all accept; tiered rules share a priority only between policies of equal priority, whose order the API leaves
 * open, and the first by name wins). Matches are compared as OVS reads them (their rendered text).
 */
class MergedFlows {
  private readonly byKey = new Map<string, Flow>();

  /** The flows' keys; throws, adding none of them, if one cannot be rendered. */
  static keys(flows: readonly Flow[]): string[] {
    return flows.map((f) => `${f.table}/${f.priority}/${renderMatch(f.match)}`);
  }

  add(flows: readonly Flow[], keys: readonly string[] = MergedFlows.keys(flows)): void {
    for (let i = 0; i < flows.length; i++) {
      const f = flows[i]!;
      const key = keys[i]!;
      const prior = this.byKey.get(key);
      if (!prior) this.byKey.set(key, f);
      else if (isConjunction(prior) && isConjunction(f)) this.byKey.set(key, { ...prior, actions: [...prior.actions, ...f.actions] });
    }
  }

  list(): Flow[] {
    return [...this.byKey.values()];
  }
}

const isConjunction = (f: Flow): boolean => f.actions.length > 0 && f.actions.every((a) => a.type === 'conjunction');

/** A rule the datapath cannot express; it is left out (it admits nothing), the others are installed. */
export interface RuleProblem {
  ruleId: number;
  message: string;
}

export function policyFlows(state: PolicyDatapath, problems: RuleProblem[] = []): Flow[] {
  return stageFlows(policyBaseFlows(state.round, state.nodeAddresses), state, PRIMARY_STAGE, problems);
}

/** A stage's flows: its base flows, then every rule's and every isolation's (rules it cannot express go to `problems`). */
export function stageFlows(base: readonly Flow[], state: Pick<PolicyDatapath, 'round' | 'rules' | 'isolations'>, stage: PolicyStage, problems: RuleProblem[] = []): Flow[] {
  const cookies = new PolicyCookies(state.round);
  const flows = new MergedFlows();
  flows.add(base);
  for (const r of state.rules) {
    let own: Flow[];
    let keys: string[];
    try {
      own = ruleFlows(state.round, r, stage);
      keys = MergedFlows.keys(own);
    } catch (e) {
      problems.push({ ruleId: r.id, message: e instanceof Error ? e.message : String(e) });
      continue;
    }
    flows.add(own, keys);
  }
  const isolations: Flow[] = [];
  for (const iso of [...state.isolations].sort((a, b) => a.ruleId - b.ruleId)) {
    const t = stage.tables[iso.direction];
    isolations.push({ table: t.isolation, priority: PolicyPriority.isolation, cookie: cookies.cookie(iso.ruleId), match: { protocol: 'ip', ...stage.appliedMatch(iso.direction, iso.ofport) }, actions: drop(iso.ruleId, iso.direction, stage) });
  }
  flows.add(isolations);
  return flows.list();
}

/** The whole policy stage of the node, as one sync (one bundle); rules it cannot express are added to `problems`. */
export function policySync(state: PolicyDatapath, problems?: RuleProblem[]): SyncRequest {
  return { cookie: policyScope(), flows: policyFlows(state, problems) };
}
