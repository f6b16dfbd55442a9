// Which nodes have realized which policies: each agent reports the generation of every policy whose flows it has
// installed; a policy is realized on a node when the node reports the generation the controller computed.

/** An agent's report: policy uid -> generation installed. */
export type RealizedPolicies = Readonly<Record<string, number>>;

export interface PolicyRealization {
  /** Nodes with a pod the policy applies to. */
  desired: number;
  /** Those of them that report the policy's current generation installed. */
  realized: number;
  /** Nodes that have not realized it yet, sorted: up to a few (for messages), or all when asked. */
  pending: string[];
}

const PENDING_SHOWN = 3;

export class Realization {
  private readonly byNode = new Map<string, RealizedPolicies>();
  /** When each node last reported (ms since the epoch), changed or not. */
  private readonly reportedAt = new Map<string, number>();

  /** Records a node's report; true when it differs from the node's last one. */
  report(node: string, realized: RealizedPolicies, now = Date.now()): boolean {
    this.reportedAt.set(node, now);
    const before = this.byNode.get(node);
    if (before && JSON.stringify(before) === JSON.stringify(realized)) return false;
    this.byNode.set(node, { ...realized });
    return true;
  }

  /** A node that is gone (its Node deleted): its reports no longer count. */
  forget(node: string): boolean {
    this.reportedAt.delete(node);
    return this.byNode.delete(node);
  }

  /** When the node last reported; undefined if it never has. */
  lastReport(node: string): Date | undefined {
    const at = this.reportedAt.get(node);
    return at === undefined ? undefined : new Date(at);
  }

  of(uid: string, generation: number, span: ReadonlySet<string>, pendingShown = PENDING_SHOWN): PolicyRealization {
    let realized = 0;
    const pending: string[] = [];
    for (const node of span) {
      if (this.byNode.get(node)?.[uid] === generation) realized++;
      else pending.push(node);
    }
    pending.sort();
    pending.length = Math.min(pending.length, pendingShown);
    return { desired: span.size, realized, pending };
  }
}
