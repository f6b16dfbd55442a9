// MultiNetworkPolicies in the controller's policy computation. Each policy is compiled once per network its
// policy-for annotation names that Seine can enforce (its own VLAN and overlay networks); every pod gets an entry
// per secondary network it asks for (its networks annotation), whose address is the pod's on that network (its
// network-status). So the computation, the shares and the agents' realization are the pod network's, and a
// network's policies only ever meet that network's pods. What cannot be enforced is said, never ignored: a
// condition in the policy's status and a Warning Event naming the network and why.
import type { V1Condition, V1Pod } from '@kubernetes/client-node';
import { parseNetworksAnnotation, parseNetworkStatus, NETWORKS_ANNOTATION, NETWORK_STATUS_ANNOTATION } from '../../secondary/annotations/index.js';
import { parseNad, type NadNetwork, type NetworkAttachmentDefinition } from '../../secondary/nad/index.js';
import { POLICY_FOR_ANNOTATION, type MultiNetworkPolicy } from '../api/multinetworkpolicy.js';
import { compileMultiNetworkPolicy, parsePolicyFor, validateMultiNetworkPolicy } from '../model/multinetworkpolicy.js';
import { networkMemberUid, networkPolicyUid } from '../model/network-uid.js';
import type { PolicyComputation, PolicyPod } from './compute.js';

/** Why a network a policy names is not enforced; undefined when Seine enforces policy on it. */
export function unenforceable(network: string, nad: NetworkAttachmentDefinition | undefined): string | undefined {
  if (!nad) return `${network}: no such NetworkAttachmentDefinition`;
  let parsed: NadNetwork;
  try {
    parsed = parseNad(nad);
  } catch (e) {
    return `${network}: its configuration is invalid (${e instanceof Error ? e.message : String(e)})`;
  }
  if (parsed.kind === 'node-file') return `${network}: it has no spec.config (the nodes' own CNI file decides its plugin), so Seine does not attach it`;
  if (parsed.kind === 'delegated') {
    const types = parsed.list.plugins.map((p) => p.type).join(', ');
    return `${network}: a delegated ${types} network; Seine enforces MultiNetworkPolicy on its own vlan and overlay networks, whose ports are on its bridges`;
  }
  if (parsed.network.networkType === 'function') return `${network}: a function network carries only what service chains steer into it`;
  return undefined;
}

/** What the controller made of one MultiNetworkPolicy. */
export interface MultiNetworkState {
  /** The generation compiled, and the policy-for annotation it was compiled with (not part of the generation). */
  generation: number;
  annotation: string;
  /** Networks enforced, and the uid of each one's compiled part. */
  parts: Map<string, string>;
  /** Why the rest is not (a network each, or the annotation's or the spec's problems). */
  problems: string[];
  /** The networks named and not enforced, with why (also in `problems`). */
  unenforced: Map<string, string>;
  /** The spec itself is refused (nothing enforced). */
  invalid: boolean;
}

const key = (namespace: string | undefined, name: string | undefined): string => `${namespace ?? 'default'}/${name ?? ''}`;

export class MultiNetworkPolicies {
  private readonly policies = new Map<string, MultiNetworkPolicy>();
  private readonly nads = new Map<string, NetworkAttachmentDefinition>();
  /** Per policy uid: what was compiled. */
  readonly states = new Map<string, MultiNetworkState>();
  /** Per pod uid: its entries' uids. */
  private readonly entries = new Map<string, Set<string>>();

  constructor(private readonly c: PolicyComputation) {}

  // ---- pods ---------------------------------------------------------------------------------------------

  /** A pod's entries on the secondary networks it asks for (none when its annotation is unreadable). */
  upsertPod(pod: V1Pod, base: PolicyPod | undefined): void {
    const uid = pod.metadata?.uid;
    if (!uid) return;
    const wanted = new Map<string, PolicyPod>();
    const annotations = pod.metadata?.annotations ?? {};
    if (base && annotations[NETWORKS_ANNOTATION]) {
      let networks: string[] = [];
      try {
        networks = parseNetworksAnnotation(annotations[NETWORKS_ANNOTATION], base.namespace).map((s) => `${s.namespace}/${s.name}`);
      } catch {
        // An annotation the agent refuses attaches nothing: no entry.
      }
      let status: ReturnType<typeof parseNetworkStatus> = [];
      try {
        status = parseNetworkStatus(annotations[NETWORK_STATUS_ANNOTATION]);
      } catch {
        // Addresses come with a readable status.
      }
      for (const network of new Set(networks)) {
        const ip = status.filter((s) => s.name === network && !s.default).flatMap((s) => s.ips ?? []).find((a) => !a.includes(':')) ?? '';
        const member = networkMemberUid(uid, network);
        wanted.set(member, { ...base, uid: member, ip, network });
      }
    }
    const before = this.entries.get(uid) ?? new Set<string>();
    for (const member of before) if (!wanted.has(member)) this.c.deletePod(member);
    for (const entry of wanted.values()) this.c.upsertPod(entry);
    if (wanted.size) this.entries.set(uid, new Set(wanted.keys()));
    else this.entries.delete(uid);
  }

  deletePod(uid: string): void {
    for (const member of this.entries.get(uid) ?? []) this.c.deletePod(member);
    this.entries.delete(uid);
  }

  // ---- policies and networks ----------------------------------------------------------------------------

  upsertPolicy(p: MultiNetworkPolicy): void {
    this.policies.set(p.metadata.uid!, p);
    this.compile(p);
  }

  deletePolicy(uid: string): void {
    this.policies.delete(uid);
    for (const part of this.states.get(uid)?.parts.values() ?? []) this.c.deletePolicy(part);
    this.states.delete(uid);
  }

  upsertNad(nad: NetworkAttachmentDefinition): void {
    this.nads.set(key(nad.metadata.namespace, nad.metadata.name), nad);
    this.recompileNaming(key(nad.metadata.namespace, nad.metadata.name));
  }

  deleteNad(nad: NetworkAttachmentDefinition): void {
    const k = key(nad.metadata.namespace, nad.metadata.name);
    this.nads.delete(k);
    this.recompileNaming(k);
  }

  /** Every policy, with what was made of it. */
  all(): Array<{ policy: MultiNetworkPolicy; state: MultiNetworkState }> {
    return [...this.policies.values()].flatMap((policy) => {
      const state = this.states.get(policy.metadata.uid!);
      return state ? [{ policy, state }] : [];
    });
  }

  private recompileNaming(network: string): void {
    for (const p of this.policies.values()) {
      const ns = p.metadata.namespace ?? 'default';
      if (parsePolicyFor(p.metadata.annotations?.[POLICY_FOR_ANNOTATION], ns).networks.includes(network)) this.compile(p);
    }
  }

  private compile(p: MultiNetworkPolicy): void {
    const uid = p.metadata.uid!;
    const ns = p.metadata.namespace ?? 'default';
    const previous = this.states.get(uid);
    const annotation = p.metadata.annotations?.[POLICY_FOR_ANNOTATION] ?? '';
    const state: MultiNetworkState = { generation: p.metadata.generation ?? 0, annotation, parts: new Map(), problems: [], unenforced: new Map(), invalid: false };
    const invalid = validateMultiNetworkPolicy(p);
    if (invalid.length) {
      state.invalid = true;
      state.problems.push(...invalid);
    } else {
      const forList = parsePolicyFor(annotation, ns);
      state.problems.push(...forList.problems);
      if (!forList.networks.length && !forList.problems.length) state.problems.push(`no ${POLICY_FOR_ANNOTATION} annotation: the policy applies to no network`);
      for (const network of forList.networks) {
        const why = unenforceable(network, this.nads.get(network));
        if (why) {
          state.problems.push(why);
          state.unenforced.set(network, why);
          continue;
        }
        const compiled = compileMultiNetworkPolicy(p, network);
        this.c.upsertPolicy(compiled.policy, compiled.groups);
        state.parts.set(network, networkPolicyUid(uid, network));
      }
    }
    for (const [network, part] of previous?.parts ?? []) if (!state.parts.has(network)) this.c.deletePolicy(part);
    this.states.set(uid, state);
  }
}

/** The conditions Seine keeps on a MultiNetworkPolicy besides Realized. */
export const ENFORCED_CONDITION = 'NetworksEnforced';

/** Whether every network the policy names is enforced (lastTransitionTime kept while the status stays). */
export function enforcedCondition(state: MultiNetworkState, previous: V1Condition | undefined, now: Date): V1Condition {
  const ok = !state.problems.length;
  const status = ok ? 'True' : 'False';
  const enforced = [...state.parts.keys()];
  const message = ok
    ? `enforced on ${enforced.join(', ')}`
    : `${state.invalid ? 'refused' : enforced.length ? `enforced on ${enforced.join(', ')}; not on` : 'not enforced'}: ${state.problems.join('; ')}`;
  return {
    type: ENFORCED_CONDITION,
    status,
    observedGeneration: state.generation,
    lastTransitionTime: previous?.status === status && previous.lastTransitionTime ? previous.lastTransitionTime : now,
    reason: ok ? 'Enforced' : state.invalid ? 'Invalid' : 'NotEnforced',
    message,
  };
}
