// A node's share of the policies, resolved for its datapath: rules get stable ids, applied-to pods their OpenFlow
// ports, peers their addresses (ipBlocks with their excepts taken out), NetworkPolicy isolation a drop per pod.
import { rangesToCidrs, subtractRanges, type Ipv4Range } from '../../ipam/ipv4-set.js';
import { cidrBlock } from '../datapath/addresses.js';
import { MAX_RULE_ID, PolicyPriority, tieredPriority } from '../datapath/layout.js';
import type { AppliedPod, DatapathRule, Isolation, NamedPort, PeerPod, PolicyDatapath } from '../datapath/state.js';
import type { CompiledPolicy, Direction, IpBlock } from '../model/types.js';

/** What the node received: its policies, the pods each applies to here, and the members of the peer groups. */
export interface NodeShare {
  policies: ReadonlyArray<{ policy: CompiledPolicy; pods: ReadonlyArray<{ uid: string; namedPorts: readonly NamedPort[] }> }>;
  groups: ReadonlyMap<string, readonly PeerPod[]>;
}

/** Rule ids that stay with their rule while it exists (flows keep their cookies), reused once it is gone. */
export class RuleIds {
  private readonly ids = new Map<string, number>();
  private readonly free: number[] = [];
  private next = 1;

  id(key: string): number {
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.free.pop() ?? this.next++;
      if (id > MAX_RULE_ID) throw new RangeError(`more than ${MAX_RULE_ID} policy rules on this node`);
      this.ids.set(key, id);
    }
    return id;
  }

  /** Releases every id whose key is not in `live`. */
  retain(live: ReadonlySet<string>): void {
    for (const [k, id] of this.ids) {
      if (live.has(k)) continue;
      this.ids.delete(k);
      this.free.push(id);
    }
  }

  /** The key of an id (for counters). */
  keyOf(id: number): string | undefined {
    for (const [k, v] of this.ids) if (v === id) return k;
    return undefined;
  }
}

/** An ipBlock's addresses as CIDRs: `cidr` without its excepts. */
export function blockCidrs(b: IpBlock): string[] {
  const except = (b.except ?? []).map((e): Ipv4Range => {
    const x = cidrBlock(e);
    return [x.first, x.last];
  });
  const whole = cidrBlock(b.cidr);
  if (!except.length) return [whole.cidr];
  return rangesToCidrs(subtractRanges([[whole.first, whole.last]], except));
}

function ipBlockCidrs(blocks: readonly IpBlock[]): string[] {
  const out: string[] = [];
  for (const b of blocks) {
    // Most blocks have no excepts (and a policy may have ten thousand of them): no list made for each.
    if (b.except?.length) out.push(...blockCidrs(b));
    else out.push(cidrBlock(b.cidr).cidr);
  }
  return out;
}

export const ruleKey = (policyUid: string, ruleName: string): string => `${policyUid}/${ruleName}`;
export const isolationKey = (policyUid: string, direction: Direction): string => `${policyUid}/isolation-${direction.toLowerCase()}`;

/**
 * The node's datapath state. `ofportsOf` gives a local pod's OpenFlow ports (none: not attached yet, it gets its
 * flows when it is; several: a sandbox being replaced).
 */
export function resolveShare(share: NodeShare, ofportsOf: (podUid: string) => readonly number[], ids: RuleIds, round: number): PolicyDatapath {
  const rules: DatapathRule[] = [];
  const isolations: Isolation[] = [];
  const live = new Set<string>();
  for (const { policy, pods } of share.policies) {
    const applied: AppliedPod[] = [];
    for (const p of pods) for (const ofport of ofportsOf(p.uid)) if (ofport > 0) applied.push({ ofport, namedPorts: p.namedPorts });
    if (!applied.length) continue;
    const position = { Ingress: 0, Egress: 0 };
    for (const r of policy.rules) {
      const key = ruleKey(policy.ref.uid, r.name);
      live.add(key);
      const pos = position[r.direction]++;
      rules.push({
        id: ids.id(key),
        direction: r.direction,
        tier: policy.tier,
        action: r.action,
        priority: policy.tier === 'NetworkPolicy' ? PolicyPriority.networkPolicy : tieredPriority(policy.priority, pos),
        applied,
        peers: {
          any: !!r.peers.any,
          cidrs: ipBlockCidrs(r.peers.ipBlocks),
          pods: r.peers.groups.flatMap((g) => share.groups.get(g) ?? []),
        },
        ports: r.ports,
      });
    }
    for (const direction of policy.isolates) {
      const key = isolationKey(policy.ref.uid, direction);
      live.add(key);
      const ruleId = ids.id(key);
      for (const a of applied) isolations.push({ direction, ofport: a.ofport, ruleId });
    }
  }
  ids.retain(live);
  return { round, rules, isolations };
}
