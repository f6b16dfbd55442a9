// What each node is sent: its share of the computation as messages, a full set when it (re)connects and then
// only what changed since, in an order that never leaves a policy naming a group the node does not have.
import type { CompiledPolicy, Protocol } from '../model/types.js';
import type { PolicyComputation } from './compute.js';

export interface ShareNamedPort {
  name: string;
  protocol: Protocol;
  port: number;
}

/** A policy as one node needs it: the policy, and the pods on that node it applies to. */
export interface SharePolicy {
  policy: CompiledPolicy;
  pods: Array<{ uid: string; namedPorts: ShareNamedPort[] }>;
}

/** A peer group's members: addresses, and named ports (egress named-port rules resolve on them). */
export interface ShareGroup {
  members: Array<{ ip: string; namedPorts: ShareNamedPort[] }>;
}

/** The node's pods the computation has taken into account: a pod in it and in no policy is in none. */
export interface SharePods {
  uids: string[];
}

/** An upsert (with `value`) or a removal (without); `pods` always replaces the node's list. */
export type ShareMessage = { kind: 'group'; key: string; value?: ShareGroup } | { kind: 'policy'; uid: string; value?: SharePolicy } | { kind: 'pods'; value: SharePods };

interface Sent {
  /** Per policy uid: the fingerprint of what was sent (the policy object and its pods on the node). */
  policies: Map<string, string>;
  /** Per group key: the group version sent. */
  groups: Map<string, number>;
  /** The node's pod list sent. */
  pods?: string;
}

/**
 * Messages are encoded once per distinct content: a policy that spans a thousand nodes is written to JSON once,
 * and so is a group's member list at each version; each node adds only its own pods.
 */
export class NodeShares {
  private readonly sent = new Map<string, Sent>();
  private readonly policyJson = new WeakMap<CompiledPolicy, { serial: number; json: string }>();
  private serials = 0;
  private readonly groupJson = new Map<string, { version: number; json: string }>();

  constructor(private readonly computation: PolicyComputation) {}

  /**
   * Everything the node needs, as if it had nothing (a node that connects or reconnects), encoded. `session`
   * names the receiver whose progress is tracked (one per connection; default: the node).
   */
  snapshot(node: string, session = node): EncodedShare {
    this.sent.delete(session);
    return this.update(node, session);
  }

  /** What changed in the node's share since `session` was last sent it (nothing: no messages), encoded. */
  update(node: string, session = node): EncodedShare {
    const c = this.computation;
    const before = this.sent.get(session) ?? { policies: new Map<string, string>(), groups: new Map<string, number>() };
    const now: Sent = { policies: new Map(), groups: new Map() };
    const groups: string[] = [];
    const policies: string[] = [];
    const removed: string[] = [];
    for (const key of c.peerGroupKeysOf(node)) {
      const version = c.groupVersion(key);
      now.groups.set(key, version);
      if (before.groups.get(key) !== version) groups.push(`{"kind":"group","key":${JSON.stringify(key)},"value":${this.groupText(key, version)}}`);
    }
    for (const policy of c.policiesOf(node)) {
      const uid = policy.ref.uid;
      const pods = JSON.stringify(c.appliedOn(uid, node).map((p) => ({ uid: p.uid, namedPorts: p.namedPorts })));
      // A changed policy is a new object: its serial (given with its cached text) tells, with the pods.
      let encoded = this.policyJson.get(policy);
      if (!encoded) this.policyJson.set(policy, (encoded = { serial: ++this.serials, json: JSON.stringify(policy) }));
      const fingerprint = `${encoded.serial}:${pods}`;
      now.policies.set(uid, fingerprint);
      if (before.policies.get(uid) !== fingerprint) policies.push(`{"kind":"policy","uid":${JSON.stringify(uid)},"value":{"policy":${encoded.json},"pods":${pods}}}`);
    }
    for (const uid of before.policies.keys()) if (!now.policies.has(uid)) removed.push(`{"kind":"policy","uid":${JSON.stringify(uid)}}`);
    for (const key of before.groups.keys()) if (!now.groups.has(key)) removed.push(`{"kind":"group","key":${JSON.stringify(key)}}`);
    // Last: a pod is announced once its policies are in the same update or before.
    now.pods = JSON.stringify([...c.podsOn(node)].sort());
    if (before.pods !== now.pods) removed.push(`{"kind":"pods","value":{"uids":${now.pods}}}`);
    this.sent.set(session, now);
    // Groups first, then the policies naming them; removals of policies before the groups they named.
    const messages = [...groups, ...policies, ...removed];
    return { count: messages.length, json: `[${messages.join(',')}]` };
  }

  /** A receiver that is gone: nothing is kept for it. */
  forget(session: string): void {
    this.sent.delete(session);
  }

  private groupText(key: string, version: number): string {
    const cached = this.groupJson.get(key);
    if (cached?.version === version) return cached.json;
    if (this.groupJson.size > 2 * this.computation.size.groups + 1000) {
      for (const k of [...this.groupJson.keys()]) if (this.computation.groupVersion(k) < 0) this.groupJson.delete(k);
    }
    const members = this.computation
      .groupMembers(key).map((p) => ({ ip: p.ip, namedPorts: p.namedPorts })).sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
    const json = JSON.stringify({ members });
    this.groupJson.set(key, { version, json });
    return json;
  }
}

/** A node's messages as the JSON array sent to it (`ShareMessage[]`). */
export interface EncodedShare {
  count: number;
  json: string;
}
