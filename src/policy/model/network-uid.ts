// The ids of MultiNetworkPolicy's per-network parts and of pods' entries on secondary networks: small and apart
// from the policy's validation, so that agents, which only need the ids, do not load it.

/**
 * `id` on a network: `${id}@${ns}.${name}`. No '/' (agent rule keys are `${policyUid}/${ruleName}`, split at the
 * first '/'); unambiguous, since a namespace has no '.' and neither part has '@'.
 */
function onNetwork(id: string, network: string): string {
  const slash = network.indexOf('/');
  if (slash < 0 || slash !== network.lastIndexOf('/')) throw new Error(`network ${JSON.stringify(network)} is not "namespace/name"`);
  return `${id}@${network.slice(0, slash)}.${network.slice(slash + 1)}`;
}

/** The uid of a MultiNetworkPolicy's part on one network (its CompiledPolicy's ref.uid). */
export function networkPolicyUid(uid: string, network: string): string {
  return onNetwork(uid, network);
}

/** A pod's entry on a secondary network, as group members name it. */
export function networkMemberUid(podUid: string, network: string): string {
  return onNetwork(podUid, network);
}

/** The inverse of networkPolicyUid and networkMemberUid: the uid and the network; undefined for a plain uid. */
export function parseNetworkUid(id: string): { uid: string; network: string } | undefined {
  const at = id.lastIndexOf('@');
  const dot = id.indexOf('.', at);
  if (at < 0 || dot < 0) return undefined;
  return { uid: id.slice(0, at), network: `${id.slice(at + 1, dot)}/${id.slice(dot + 1)}` };
}
