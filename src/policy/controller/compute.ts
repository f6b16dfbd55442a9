// The controller's policy computation: which pods each group holds and which nodes need each policy and group,
// kept up to date incrementally as pods, namespaces and policies change. Pure (no API access): the controller
// feeds it from informers, benches feed it directly. Each node gets only its share: the policies that apply to
// its pods, and the groups those policies name as peers.
import { groupMatches } from '../model/groups.js';
import type { CompiledPolicy, PodGroupSpec, Protocol } from '../model/types.js';

export interface PolicyPod {
  uid: string;
  namespace: string;
  name: string;
  labels: Record<string, string>;
  /** Empty while the pod has no address yet (it is a member of no address group then). */
  ip: string;
  /** Empty while unscheduled. */
  node: string;
  namedPorts: ReadonlyArray<{ name: string; protocol: Protocol; port: number }>;
  /** A pod's entry on a secondary network (NAD "namespace/name"): `ip` is its address there. Absent: the pod itself. */
  network?: string;
}

interface Group {
  spec: PodGroupSpec;
  members: Set<string>;
  /** Policies naming the group (as applied-to or as a peer), by uid. */
  users: Set<string>;
  /** Members per node (for applied-to spans). */
  perNode: Map<string, number>;
  /** Bumped whenever a member joins, leaves or changes address or named ports. */
  version: number;
}

interface PolicyEntry {
  policy: CompiledPolicy;
  peerGroups: string[];
  /** Nodes that have a pod the policy applies to. */
  span: Set<string>;
}

/** Which nodes changed, and for what, since the last `drain`. */
export interface Changes {
  nodes: Set<string>;
}

const inc = (m: Map<string, number>, k: string, d: number): void => {
  const v = (m.get(k) ?? 0) + d;
  if (v > 0) m.set(k, v);
  else m.delete(k);
};

export class PolicyComputation {
  private readonly namespaces = new Map<string, Record<string, string>>();
  private readonly pods = new Map<string, PolicyPod>();
  private readonly podsByNamespace = new Map<string, Set<string>>();
  /** Pods by node: each node is told which of its pods the computation has taken into account. */
  private readonly podsByNode = new Map<string, Set<string>>();
  /** The groups each pod is a member of (so a pod's change touches its groups, not every group). */
  private readonly memberOf = new Map<string, Set<string>>();
  private readonly groups = new Map<string, Group>();
  /** Groups confined to one namespace, by namespace; the others are evaluated against every namespace. */
  private readonly groupsByNamespace = new Map<string, Set<string>>();
  private readonly clusterGroups = new Set<string>();
  private readonly policies = new Map<string, PolicyEntry>();
  /** Per node: the policies it enforces, and how many of them name each group as a peer. */
  private readonly nodePolicies = new Map<string, Set<string>>();
  private readonly nodePeerGroups = new Map<string, Map<string, number>>();
  private dirtyPolicies = new Set<string>();
  /** Groups whose members changed since the last drain, with the nodes of the pods that changed. */
  private dirtyGroups = new Map<string, Set<string>>();
  private changedNodes = new Set<string>();

  // ---- inputs -------------------------------------------------------------------------------------------

  upsertNamespace(name: string, labels: Record<string, string>): void {
    this.namespaces.set(name, labels);
    // Only groups selecting namespaces by label can change.
    for (const key of this.clusterGroups) for (const uid of this.podsByNamespace.get(name) ?? []) this.evaluate(key, uid);
  }

  deleteNamespace(name: string): void {
    this.namespaces.delete(name);
    for (const key of this.clusterGroups) for (const uid of this.podsByNamespace.get(name) ?? []) this.evaluate(key, uid);
  }

  upsertPod(pod: PolicyPod): void {
    const old = this.pods.get(pod.uid);
    if (old && old.node !== pod.node) this.removePod(old);
    this.pods.set(pod.uid, pod);
    let inNs = this.podsByNamespace.get(pod.namespace);
    if (!inNs) this.podsByNamespace.set(pod.namespace, (inNs = new Set()));
    inNs.add(pod.uid);
    if (pod.node && !this.podsByNode.get(pod.node)?.has(pod.uid)) {
      let onNode = this.podsByNode.get(pod.node);
      if (!onNode) this.podsByNode.set(pod.node, (onNode = new Set()));
      onNode.add(pod.uid);
      this.changedNodes.add(pod.node);
    }
    for (const key of this.groupsByNamespace.get(pod.namespace) ?? []) this.evaluate(key, pod.uid);
    for (const key of this.clusterGroups) this.evaluate(key, pod.uid);
    // An address or named port change matters to every group the pod is in, even if membership stays.
    if (old && (old.ip !== pod.ip || JSON.stringify(old.namedPorts) !== JSON.stringify(pod.namedPorts))) {
      for (const key of this.memberOf.get(pod.uid) ?? []) this.markDirty(key, pod.node);
    }
  }

  deletePod(uid: string): void {
    const pod = this.pods.get(uid);
    if (pod) this.removePod(pod);
  }

  upsertPolicy(policy: CompiledPolicy, groups: ReadonlyMap<string, PodGroupSpec>): void {
    const uid = policy.ref.uid;
    const previous = this.policies.get(uid);
    const peerGroups = [...new Set(policy.rules.flatMap((r) => r.peers.groups))];
    for (const key of [policy.appliedTo, ...peerGroups]) this.useGroup(key, groups.get(key)!, uid);
    const entry: PolicyEntry = { policy, peerGroups, span: new Set() };
    if (previous) {
      // Off every node with its old peer groups; the drain puts it back where it applies, with the new ones.
      this.setSpan(uid, previous, new Set());
      for (const key of new Set([previous.policy.appliedTo, ...previous.peerGroups])) if (key !== policy.appliedTo && !peerGroups.includes(key)) this.releaseGroup(key, uid);
    }
    this.policies.set(uid, entry);
    this.dirtyPolicies.add(uid);
  }

  deletePolicy(uid: string): void {
    const entry = this.policies.get(uid);
    if (!entry) return;
    this.setSpan(uid, entry, new Set());
    this.policies.delete(uid);
    for (const key of new Set([entry.policy.appliedTo, ...entry.peerGroups])) this.releaseGroup(key, uid);
  }

  // ---- outputs ------------------------------------------------------------------------------------------

  /** Brings spans up to date and returns the nodes whose share changed since the last call. */
  drain(): Changes {
    for (const [key, nodes] of this.dirtyGroups) {
      const g = this.groups.get(key);
      if (!g) continue;
      for (const uid of g.users) {
        const p = this.policies.get(uid);
        if (!p) continue;
        if (p.policy.appliedTo === key) {
          // The nodes whose pods joined or left (or changed) hear; the span follows the members.
          this.dirtyPolicies.add(uid);
          for (const n of nodes) if (n) this.changedNodes.add(n);
        }
        // A peer group's members changed: every node enforcing a policy that names it must hear.
        if (p.peerGroups.includes(key)) for (const n of p.span) this.changedNodes.add(n);
      }
    }
    for (const uid of this.dirtyPolicies) {
      const p = this.policies.get(uid);
      if (!p) continue;
      const g = this.groups.get(p.policy.appliedTo)!;
      this.setSpan(uid, p, new Set(g.perNode.keys()));
    }
    this.dirtyGroups = new Map();
    this.dirtyPolicies = new Set();
    const nodes = this.changedNodes;
    this.changedNodes = new Set();
    return { nodes };
  }

  /** A policy as computed (its latest compiled form). */
  policy(uid: string): CompiledPolicy | undefined {
    return this.policies.get(uid)?.policy;
  }

  /** Every policy, as computed. */
  allPolicies(): IterableIterator<CompiledPolicy> {
    return (function* (entries) {
      for (const e of entries) yield e.policy;
    })(this.policies.values());
  }

  /** The policies a node enforces. */
  policiesOf(node: string): CompiledPolicy[] {
    return [...(this.nodePolicies.get(node) ?? [])].map((uid) => this.policies.get(uid)!.policy);
  }

  /** The pods on a node the computation has taken into account (uids). */
  podsOn(node: string): ReadonlySet<string> {
    return this.podsByNode.get(node) ?? new Set();
  }

  /** The pods of a group (uids). */
  members(key: string): ReadonlySet<string> {
    return this.groups.get(key)?.members ?? new Set();
  }

  /** The group's version: equal versions mean equal members (for senders that cache what they encoded). */
  groupVersion(key: string): number {
    return this.groups.get(key)?.version ?? -1;
  }

  /** The peer groups a node needs (keys). */
  peerGroupKeysOf(node: string): string[] {
    return [...(this.nodePeerGroups.get(node)?.keys() ?? [])];
  }

  /** A group's members that have an address. */
  groupMembers(key: string): PolicyPod[] {
    return [...this.members(key)].map((uid) => this.pods.get(uid)!).filter((p) => p.ip);
  }

  /** A node's peer groups with their members' addresses (and named ports, for egress named-port rules). */
  peerGroupsOf(node: string): Map<string, PolicyPod[]> {
    const out = new Map<string, PolicyPod[]>();
    for (const key of this.nodePeerGroups.get(node)?.keys() ?? []) out.set(key, this.groupMembers(key));
    return out;
  }

  /** The pods on `node` that a policy applies to. */
  appliedOn(policyUid: string, node: string): PolicyPod[] {
    const p = this.policies.get(policyUid);
    if (!p) return [];
    return [...this.members(p.policy.appliedTo)].map((uid) => this.pods.get(uid)!).filter((pod) => pod.node === node);
  }

  /** Nodes that enforce the policy. */
  spanOf(policyUid: string): ReadonlySet<string> {
    return this.policies.get(policyUid)?.span ?? new Set();
  }

  get size(): { namespaces: number; pods: number; policies: number; groups: number } {
    return { namespaces: this.namespaces.size, pods: this.pods.size, policies: this.policies.size, groups: this.groups.size };
  }

  // ---- internals ----------------------------------------------------------------------------------------

  private removePod(pod: PolicyPod): void {
    for (const key of [...(this.memberOf.get(pod.uid) ?? [])]) this.setMember(key, this.groups.get(key)!, pod, false);
    this.memberOf.delete(pod.uid);
    this.pods.delete(pod.uid);
    const inNs = this.podsByNamespace.get(pod.namespace);
    inNs?.delete(pod.uid);
    if (inNs && !inNs.size) this.podsByNamespace.delete(pod.namespace);
    const onNode = this.podsByNode.get(pod.node);
    if (onNode?.delete(pod.uid)) {
      if (!onNode.size) this.podsByNode.delete(pod.node);
      this.changedNodes.add(pod.node);
    }
  }

  private evaluate(key: string, uid: string): void {
    const g = this.groups.get(key)!;
    const pod = this.pods.get(uid)!;
    const is = groupMatches(g.spec, pod, this.namespaces.get(pod.namespace));
    if (is !== g.members.has(uid)) this.setMember(key, g, pod, is);
  }

  private setMember(key: string, g: Group, pod: PolicyPod, member: boolean): void {
    let of = this.memberOf.get(pod.uid);
    if (member) {
      g.members.add(pod.uid);
      if (!of) this.memberOf.set(pod.uid, (of = new Set()));
      of.add(key);
    } else {
      g.members.delete(pod.uid);
      of?.delete(key);
    }
    if (pod.node) inc(g.perNode, pod.node, member ? 1 : -1);
    this.markDirty(key, pod.node);
  }

  private markDirty(key: string, node: string): void {
    const g = this.groups.get(key);
    if (g) g.version++;
    let nodes = this.dirtyGroups.get(key);
    if (!nodes) this.dirtyGroups.set(key, (nodes = new Set()));
    nodes.add(node);
  }

  private useGroup(key: string, spec: PodGroupSpec, policyUid: string): void {
    let g = this.groups.get(key);
    if (!g) {
      g = { spec, members: new Set(), users: new Set(), perNode: new Map(), version: 0 };
      this.groups.set(key, g);
      if (spec.namespace !== undefined) {
        let s = this.groupsByNamespace.get(spec.namespace);
        if (!s) this.groupsByNamespace.set(spec.namespace, (s = new Set()));
        s.add(key);
        for (const uid of this.podsByNamespace.get(spec.namespace) ?? []) this.evaluate(key, uid);
      } else {
        this.clusterGroups.add(key);
        for (const [ns, uids] of this.podsByNamespace) {
          if (spec.namespaceSelector && !groupMatches({ namespaceSelector: spec.namespaceSelector }, { namespace: ns }, this.namespaces.get(ns))) continue;
          for (const uid of uids) this.evaluate(key, uid);
        }
      }
    }
    g.users.add(policyUid);
  }

  private releaseGroup(key: string, policyUid: string): void {
    const g = this.groups.get(key);
    if (!g) return;
    g.users.delete(policyUid);
    if (g.users.size) return;
    this.groups.delete(key);
    this.dirtyGroups.delete(key);
    for (const uid of g.members) this.memberOf.get(uid)?.delete(key);
    if (g.spec.namespace !== undefined) {
      const s = this.groupsByNamespace.get(g.spec.namespace);
      s?.delete(key);
      if (s && !s.size) this.groupsByNamespace.delete(g.spec.namespace);
    } else {
      this.clusterGroups.delete(key);
    }
  }

  /** Moves a policy to a new set of nodes, keeping each node's policies and peer-group counts. */
  private setSpan(uid: string, entry: PolicyEntry, span: Set<string>): void {
    for (const n of entry.span) {
      if (span.has(n)) continue;
      this.nodePolicies.get(n)?.delete(uid);
      const peers = this.nodePeerGroups.get(n);
      if (peers) for (const key of entry.peerGroups) inc(peers, key, -1);
      this.changedNodes.add(n);
    }
    for (const n of span) {
      if (entry.span.has(n)) continue;
      let s = this.nodePolicies.get(n);
      if (!s) this.nodePolicies.set(n, (s = new Set()));
      s.add(uid);
      let peers = this.nodePeerGroups.get(n);
      if (!peers) this.nodePeerGroups.set(n, (peers = new Map()));
      for (const key of entry.peerGroups) inc(peers, key, 1);
      this.changedNodes.add(n);
    }
    entry.span = span;
  }
}
