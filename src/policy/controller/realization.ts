// Which nodes have realized which policies: each agent reports the generation of every policy whose flows it has
// installed; a policy is realized on a node when the node reports the generation the controller computed.

/** An agent's report: policy uid -> generation installed. */
export type RealizedPolicies = Readonly<Record<string, number>>;

export interface PolicyRealization {
  /** Nodes with a pod the policy applies to. */
  desired: number;
  /** Those of them that report the policy's current generation installed. */
  realized: number;
  /** Up to a few nodes that have not realized it yet (for messages). */
  pending: string[];
}

const PENDING_SHOWN = 3;

export class Realization {
  private readonly byNode = new Map<string, RealizedPolicies>();

  /** Records a node's report; true when it differs from the node's last one. */
  report(node: string, realized: RealizedPolicies): boolean {
    const before = this.byNode.get(node);
    if (before && JSON.stringify(before) === JSON.stringify(realized)) return false;
    this.byNode.set(node, { ...realized });
    return true;
  }

  /** A node that is gone (its Node deleted): its reports no longer count. */
  forget(node: string): boolean {
    return this.byNode.delete(node);
  }

  of(uid: string, generation: number, span: ReadonlySet<string>): PolicyRealization {
    let realized = 0;
    const pending: string[] = [];
    for (const node of span) {
      if (this.byNode.get(node)?.[uid] === generation) realized++;
      else if (pending.length < PENDING_SHOWN) pending.push(node);
    }
    return { desired: span.size, realized, pending: pending.sort() };
  }
}
