// A chain's status from what the controller knows: its verdicts (validity, network, index, overlaps), the
// replica ids it assigned, the pods, and the agents' node reports. Pure, so every rule is unit-tested.
import type { V1Pod } from '@kubernetes/client-node';
import {
  ChainConditionType,
  hopDefaults,
  MAX_REPLICA_ID,
  zeroCounters,
  type ChainCondition,
  type Counters,
  type HopStatus,
  type ReplicaStatus,
  type ServiceChain,
  type ServiceChainStatus,
} from '../api/types.js';
import { replicaHealth, type NodeReports } from '../model/desired.js';
import { selectorMatches } from '../../k8s/selector.js';

/** Why a condition is what it is (the reason of metav1.Condition). */
export const ChainReason = {
  Valid: 'Valid',
  InvalidSpec: 'InvalidSpec',
  NetworkNotFound: 'NetworkNotFound',
  UnsupportedNetwork: 'UnsupportedNetwork',
  NoIndex: 'NoIndexAvailable',
  AsExpected: 'AsExpected',
  NoReplicas: 'NoReplicas',
  NoHealthyReplica: 'NoHealthyReplica',
  TooManyReplicas: 'TooManyReplicas',
  Ready: 'Ready',
  Invalid: 'Invalid',
  HopUnavailable: 'HopUnavailable',
  NoOverlap: 'NoOverlap',
  Overlap: 'Overlap',
} as const;

export interface Verdict {
  reason: string;
  message: string;
}

export interface ChainStatusInput {
  chain: ServiceChain;
  /** The chain's index, when it has one. */
  index?: number;
  /** Why the chain is Invalid (spec, network, no index); undefined when it is valid. */
  invalid?: Verdict;
  /** Hop name -> (pod uid -> replica id); absent for an invalid spec. */
  replicaIds: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** Hop name -> candidates left without an id. */
  unassigned: ReadonlyMap<string, number>;
  /** Pods by uid. */
  pods: ReadonlyMap<string, V1Pod>;
  reports: NodeReports;
  /** Other chains that classify some of the same packets, and the precedence order among all of them. */
  overlap?: { others: string[]; order: string[] };
  previous?: ServiceChainStatus;
  /** RFC 3339 time of this computation. */
  now: string;
}

const add = (a: Counters, b: Counters | undefined): Counters => ({ forward: a.forward + (b?.forward ?? 0), reverse: a.reverse + (b?.reverse ?? 0) });

function condition(type: string, status: boolean, v: Verdict, previous: ServiceChainStatus | undefined, generation: number | undefined, now: string): ChainCondition {
  const s = status ? 'True' : 'False';
  const old = previous?.conditions?.find((c) => c.type === type);
  return {
    type,
    status: s,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    lastTransitionTime: old && old.status === s ? old.lastTransitionTime : now,
    reason: v.reason,
    message: v.message,
  };
}

function replicaStatuses(input: ChainStatusInput, hopName: string, ids: ReadonlyMap<string, number>): ReplicaStatus[] {
  const { chain, reports, previous, now } = input;
  const spec = chain.spec.hops.find((h) => h.name === hopName)!;
  const before = previous?.hops?.find((h) => h.name === hopName)?.replicas ?? [];
  const out: ReplicaStatus[] = [];
  for (const [uid, id] of ids) {
    const pod = input.pods.get(uid);
    if (!pod) continue;
    const node = pod.spec?.nodeName;
    const health = selectorMatches(spec.podSelector, pod.metadata?.labels)
      ? replicaHealth(pod, chain.metadata.uid ?? '', hopName, reports)
      : { healthy: false, reason: 'NotSelected' };
    const prior = before.find((r) => r.podUID === uid);
    const since = prior && prior.healthy === health.healthy && prior.since ? prior.since : (health.since ?? now);
    const entry = node ? reports.get(node)?.replicas.find((r) => r.chain === chain.metadata.uid && r.hop === hopName && r.pod === uid) : undefined;
    out.push({
      pod: pod.metadata?.name ?? '',
      podUID: uid,
      ...(node ? { node } : {}),
      id,
      healthy: health.healthy,
      ...(health.reason ? { reason: health.reason } : {}),
      since,
      packets: entry?.packets ?? zeroCounters(),
      bytes: entry?.bytes ?? zeroCounters(),
    });
  }
  return out.sort((a, b) => a.id - b.id);
}

/** The status to write; conditions keep their lastTransitionTime while their status stays. */
export function chainStatus(input: ChainStatusInput): ServiceChainStatus {
  const { chain, previous, now } = input;
  const generation = chain.metadata.generation;
  const hops: HopStatus[] = [];
  const degraded: string[] = [];
  let degradedReason: string = ChainReason.AsExpected;
  const unavailable: string[] = [];
  for (const spec of chain.spec?.hops ?? []) {
    const hop = hopDefaults(spec);
    const ids = input.replicaIds.get(hop.name);
    if (!ids) continue;
    const replicas = replicaStatuses(input, hop.name, ids);
    const packets = replicas.reduce((a, r) => add(a, r.packets), zeroCounters());
    const bytes = replicas.reduce((a, r) => add(a, r.bytes), zeroCounters());
    hops.push({ name: hop.name, replicas, packets, bytes });
    const healthy = replicas.filter((r) => r.healthy).length;
    const extra = input.unassigned.get(hop.name) ?? 0;
    if (replicas.length === 0) {
      degraded.push(`hop ${hop.name}: its podSelector matches no pod`);
      degradedReason = ChainReason.NoReplicas;
    } else if (healthy === 0) {
      degraded.push(`hop ${hop.name}: none of its ${replicas.length} replicas is healthy (${hop.failurePolicy === 'FailOpen' ? 'traffic skips the hop' : 'traffic is dropped'})`);
      if (degradedReason === ChainReason.AsExpected) degradedReason = ChainReason.NoHealthyReplica;
    }
    if (extra > 0) {
      degraded.push(`hop ${hop.name}: ${extra} matching pods got no replica id (a hop has at most ${MAX_REPLICA_ID}); they carry no traffic`);
      if (degradedReason === ChainReason.AsExpected) degradedReason = ChainReason.TooManyReplicas;
    }
    if (healthy === 0 && hop.failurePolicy === 'FailClosed') unavailable.push(hop.name);
  }
  const all = hops.flatMap((h) => h.replicas ?? []);
  let chainPackets = zeroCounters();
  let chainBytes = zeroCounters();
  for (const report of input.reports.values()) {
    for (const c of report.chains) {
      if (c.chain !== chain.metadata.uid) continue;
      chainPackets = add(chainPackets, c.packets);
      chainBytes = add(chainBytes, c.bytes);
    }
  }
  const invalid = input.invalid;
  const ready: Verdict = invalid
    ? { reason: ChainReason.Invalid, message: 'the chain is Invalid; nothing is steered' }
    : unavailable.length
      ? { reason: ChainReason.HopUnavailable, message: `no healthy replica in FailClosed hop${unavailable.length > 1 ? 's' : ''} ${unavailable.join(', ')}: classified traffic is dropped` }
      : { reason: ChainReason.Ready, message: `${all.filter((r) => r.healthy).length} of ${all.length} replicas healthy` };
  const overlap = input.overlap;
  const overlapVerdict: Verdict = overlap?.others.length
    ? {
        reason: ChainReason.Overlap,
        message: `classifies some of the same packets as ${overlap.others.join(', ')}; ${overlap.order[0]} wins (precedence order: ${overlap.order.join(', ')})`,
      }
    : { reason: ChainReason.NoOverlap, message: 'no other chain classifies the same packets' };
  const conditions = [
    condition(ChainConditionType.Ready, !invalid && unavailable.length === 0, ready, previous, generation, now),
    condition(ChainConditionType.Invalid, !!invalid, invalid ?? { reason: ChainReason.Valid, message: 'the spec is valid and its network usable' }, previous, generation, now),
    condition(ChainConditionType.Degraded, degraded.length > 0, degraded.length ? { reason: degradedReason, message: degraded.join('; ') } : { reason: ChainReason.AsExpected, message: 'every hop has a healthy replica' }, previous, generation, now),
    condition(ChainConditionType.Overlapping, !!overlap?.others.length, overlapVerdict, previous, generation, now),
  ];
  return {
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    ...(input.index !== undefined ? { index: input.index } : {}),
    hopCount: chain.spec?.hops?.length ?? 0,
    readyReplicas: `${all.filter((r) => r.healthy).length}/${all.length}`,
    conditions,
    hops,
    packets: chainPackets,
    bytes: chainBytes,
  };
}

/**
 * How long a status write may wait: not at all when more than counters changed, or when the chain carries its
 * first traffic in a direction (an operator who just sent some is waiting to see it); otherwise until the counter
 * period since the last write has passed. 0: write now.
 */
export function counterWriteDelay(before: ServiceChainStatus | undefined, next: ServiceChainStatus, lastWriteAt: number | undefined, periodMs: number, now: number): number {
  if (lastWriteAt === undefined) return 0;
  if (JSON.stringify(withoutCounters(before)) !== JSON.stringify(withoutCounters(next))) return 0;
  const began = (dir: 'forward' | 'reverse'): boolean => !before?.packets?.[dir] && (next.packets?.[dir] ?? 0) > 0;
  if (began('forward') || began('reverse')) return 0;
  return Math.max(0, lastWriteAt + periodMs - now);
}

/** The status without counters: what decides whether a write is due now or may wait for the counter period. */
export function withoutCounters(s: ServiceChainStatus | undefined): unknown {
  if (!s) return undefined;
  const { packets: _p, bytes: _b, hops, ...rest } = s;
  return { ...rest, hops: hops?.map(({ packets: _hp, bytes: _hb, replicas, ...h }) => ({ ...h, replicas: replicas?.map(({ packets: _rp, bytes: _rb, ...r }) => r) })) };
}
