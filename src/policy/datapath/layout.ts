// Where the policy feature lives in the pipeline: its tables inside the egress and ingress policy seams, the
// registers it uses, its conjunction ids and its flow cookies.
import { CookieOwner, CookieScheme, type CookieSelector, type Match } from '../../ovs/openflow/index.js';
import type { RegField } from '../../primary/pipeline/marks.js';
import { SEAMS, Table } from '../../primary/pipeline/tables.js';
import type { Direction, Tier } from '../model/types.js';

/** Per direction: a table per tier (Admin, NetworkPolicy, its isolation drops, Baseline), then the seam's exit. */
export interface DirectionTables {
  admin: number;
  networkPolicy: number;
  isolation: number;
  baseline: number;
  exit: number;
}

export const POLICY_TABLES: Record<Direction, DirectionTables> = {
  Egress: { admin: Table.EgressPolicy, networkPolicy: Table.EgressPolicy + 1, isolation: Table.EgressPolicy + 2, baseline: Table.EgressPolicy + 3, exit: SEAMS.egressPolicy.exit },
  Ingress: { admin: Table.IngressPolicy, networkPolicy: Table.IngressPolicy + 1, isolation: Table.IngressPolicy + 2, baseline: Table.IngressPolicy + 3, exit: SEAMS.ingressPolicy.exit },
};

/**
 * On the integration bridge a verdict also says who gave it: the deciding rule's id goes into a register (one per
 * direction), and a drop goes through the direction's drop table, whose only flow drops. A Traceflow reads the
 * registers from its packet-ins and observes drops in the drop tables; ordinary traffic pays one register load.
 */
export interface VerdictRecord {
  ruleField: Record<Direction, RegField>;
  dropTable: Record<Direction, number>;
}

/** reg5: the egress rule that decided (0: none); reg6: the ingress rule. */
export const EgressRuleField: RegField = { reg: 5, start: 0, end: 31 };
export const IngressRuleField: RegField = { reg: 6, start: 0, end: 31 };

export const PRIMARY_VERDICTS: VerdictRecord = {
  ruleField: { Egress: EgressRuleField, Ingress: IngressRuleField },
  dropTable: { Egress: Table.EgressPolicy + 4, Ingress: Table.IngressPolicy + 4 },
};

export const tierTable = (direction: Direction, tier: Tier, tables: Record<Direction, DirectionTables> = POLICY_TABLES): number => {
  const t = tables[direction];
  return tier === 'Admin' ? t.admin : tier === 'Baseline' ? t.baseline : t.networkPolicy;
};

/**
 * Where a bridge's pipeline holds the policy rules: the tables of each direction, and how a rule matches the pods
 * it applies to (egress: the packet came in on the pod's port; ingress: the pipeline found the pod's port as the
 * packet's destination and holds it in a register).
 */
export interface PolicyStage {
  tables: Record<Direction, DirectionTables>;
  appliedMatch(direction: Direction, ofport: number): Match;
  /** Where verdicts are recorded; without it a drop is an empty action list. */
  verdicts?: VerdictRecord;
}

/** The integration bridge's policy seams (its L2 forwarding stage leaves the output port in reg1). */
export const PRIMARY_STAGE: PolicyStage = {
  tables: POLICY_TABLES,
  appliedMatch: (direction, ofport) => (direction === 'Egress' ? { in_port: ofport } : { reg1: ofport }),
  verdicts: PRIMARY_VERDICTS,
};

/** Flow priorities in the policy tables (below the pipeline's established bypass). */
export const PolicyPriority = {
  /** Ingress from the node itself (kubelet probes): always allowed, above every rule. */
  fromNode: 64_900,
  /** Admin and Baseline rules: 64_000 - (policy priority * 26 + rule position): earlier first. */
  tieredTop: 64_000,
  /** NetworkPolicy rules (all accept; order does not matter). */
  networkPolicy: 1000,
  /** An isolated pod's default drop. */
  isolation: 1000,
  /** Nothing matched in this tier: on to the next. */
  next: 1,
} as const;

/** Rules per direction of a ClusterNetworkPolicy (its schema's maxItems) + 1: the stride of tiered priorities. */
const RULE_STRIDE = 26;
export const MAX_TIER_PRIORITY = 1000;

export function tieredPriority(policyPriority: number, rulePosition: number): number {
  if (!Number.isInteger(policyPriority) || policyPriority < 0 || policyPriority > MAX_TIER_PRIORITY) throw new RangeError(`policy priority ${policyPriority} outside 0..${MAX_TIER_PRIORITY}`);
  if (!Number.isInteger(rulePosition) || rulePosition < 0 || rulePosition >= RULE_STRIDE) throw new RangeError(`rule position ${rulePosition} outside 0..${RULE_STRIDE - 1}`);
  return PolicyPriority.tieredTop - (policyPriority * RULE_STRIDE + rulePosition);
}

/**
 * Conjunction ids of the policy feature: above the service chains' (1..255). A rule may need several
 * conjunctions (one per resolved named-port set): id = FIRST_CONJ_ID + rule id * VARIANTS + variant.
 */
export const FIRST_CONJ_ID = 0x1_0000;
export const VARIANTS = 64;
export const MAX_RULE_ID = Math.floor((0xffff_ffff - FIRST_CONJ_ID) / VARIANTS);

export function conjId(ruleId: number, variant: number): number {
  if (!Number.isInteger(ruleId) || ruleId < 1 || ruleId > MAX_RULE_ID) throw new RangeError(`rule id ${ruleId} outside 1..${MAX_RULE_ID}`);
  if (!Number.isInteger(variant) || variant < 0 || variant >= VARIANTS) throw new RangeError(`variant ${variant} outside 0..${VARIANTS - 1}`);
  return FIRST_CONJ_ID + ruleId * VARIANTS + variant;
}

/** Flow cookies (owner `policy`): object = the rule id (0 for the feature's node-wide flows). */
export class PolicyCookies {
  private readonly scheme: CookieScheme;
  constructor(round: number) {
    this.scheme = new CookieScheme(CookieOwner.policy, round);
  }
  cookie(ruleId = 0): bigint {
    return this.scheme.cookie(ruleId);
  }
}

/** Every flow of the policy feature (the scope of its full sync). */
export function policyScope(): CookieSelector {
  return new CookieScheme(CookieOwner.policy, 0).all;
}
