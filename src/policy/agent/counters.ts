// Per-rule counters from the policy flows' statistics: the flows that carry a rule's verdict (its conjunction
// flows, or its single-clause flows) count the new connections the rule decided; clause flows count nothing of
// their own. Isolation drops count under their policy's isolation rule.
import { decodeCookie, type InstalledFlow } from '../../ovs/openflow/index.js';

export interface RuleCounter {
  ruleId: number;
  packets: bigint;
  bytes: bigint;
}

/** Sums the verdict flows of each rule (the cookie's object is the rule id; 0 is the stage's own flows). */
export function ruleCounters(flows: readonly InstalledFlow[]): RuleCounter[] {
  const byRule = new Map<number, RuleCounter>();
  for (const f of flows) {
    const ruleId = Number(decodeCookie(f.cookie).object);
    if (ruleId === 0) continue;
    // A clause flow only feeds conjunctions; the packet is counted where the conjunction decides.
    if (f.actionList.length && f.actionList.every((a) => a.startsWith('conjunction('))) continue;
    const c = byRule.get(ruleId) ?? { ruleId, packets: 0n, bytes: 0n };
    c.packets += f.nPackets;
    c.bytes += f.nBytes;
    byRule.set(ruleId, c);
  }
  return [...byRule.values()].sort((a, b) => a.ruleId - b.ruleId);
}
