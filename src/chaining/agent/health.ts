// Health of the replicas that run on this node: pod Ready, ports present, and (Forwarding checks) probes that
// come back. Pure bookkeeping: the feature feeds it observations and asks for the verdicts.

export interface ReplicaCheck {
  key: string;
  /** Pod Ready and not terminating. */
  podReady: boolean;
  /** Both function interfaces exist as ports on the bridge. */
  portsPresent: boolean;
  /** Forwarding checks: probes are sent every periodSeconds; failureThreshold misses in a row = unhealthy. */
  probe?: { periodMs: number; failureThreshold: number };
}

export interface ReplicaVerdict {
  healthy: boolean;
  reason?: string;
  /** When `healthy` last changed. */
  since: Date;
}

interface ProbeState {
  /** The last probe sent has not come back yet. */
  outstanding: boolean;
  lastSentAt: number;
  /** Probes in a row that did not come back in time. */
  misses: number;
  everReturned: boolean;
}

/** A probe not back this long after it was sent is missed: half the period, at most 500 ms (loopback round trips take microseconds). */
export function probeTimeoutMs(periodMs: number): number {
  return Math.min(periodMs / 2, 500);
}

export class ReplicaHealth {
  private readonly verdicts = new Map<string, ReplicaVerdict>();
  private readonly probes = new Map<string, ProbeState>();

  constructor(private readonly now: () => number = Date.now) {}

  /** A verdict known from before (this node's last report, after an agent restart), kept until checks change it. */
  seed(key: string, healthy: boolean, since: Date): void {
    if (!this.verdicts.has(key)) this.verdicts.set(key, { healthy, ...(healthy ? {} : { reason: 'Reported' }), since });
    if (healthy && !this.probes.has(key)) this.probes.set(key, { outstanding: false, misses: 0, lastSentAt: 0, everReturned: true });
  }

  /** A probe of `key` came back. */
  returned(key: string): void {
    const p = this.probes.get(key);
    if (!p) return;
    p.misses = 0;
    p.outstanding = false;
    p.everReturned = true;
  }

  /**
   * Counts the probes that did not come back in time, and says which replicas are due a probe now (recording that
   * it is sent). While nothing can be observed (`observing` false: the switch connection is down or just back),
   * no probe is sent and none counts as missed: verdicts stay as they are.
   */
  due(checks: readonly ReplicaCheck[], observing = true): string[] {
    const out: string[] = [];
    const t = this.now();
    for (const c of checks) {
      if (!c.probe || !c.portsPresent) continue;
      if (!observing) {
        const p = this.probes.get(c.key);
        if (p) p.outstanding = false;
        continue;
      }
      let p = this.probes.get(c.key);
      if (!p) {
        p = { outstanding: false, misses: 0, lastSentAt: 0, everReturned: false };
        this.probes.set(c.key, p);
      }
      let missed = false;
      if (p.outstanding && t - p.lastSentAt >= probeTimeoutMs(c.probe.periodMs)) {
        p.outstanding = false;
        p.misses++;
        missed = true;
      }
      // A miss is confirmed (or refuted) by the next probe at once, not a period later: a replica that stopped
      // forwarding leaves rotation within one period plus failureThreshold probe timeouts.
      if (!missed && t - p.lastSentAt < c.probe.periodMs) continue;
      p.outstanding = true;
      p.lastSentAt = t;
      out.push(c.key);
    }
    return out;
  }

  /**
   * The verdicts for `checks` (replicas no longer checked are forgotten); `changed` lists the keys whose health
   * changed since the last evaluation.
   */
  evaluate(checks: readonly ReplicaCheck[]): { verdicts: Map<string, ReplicaVerdict>; changed: string[] } {
    const changed: string[] = [];
    const keep = new Set(checks.map((c) => c.key));
    for (const k of [...this.verdicts.keys()]) if (!keep.has(k)) this.verdicts.delete(k);
    for (const k of [...this.probes.keys()]) if (!keep.has(k)) this.probes.delete(k);
    for (const c of checks) {
      const p = this.probes.get(c.key);
      let healthy = true;
      let reason: string | undefined;
      if (!c.portsPresent) [healthy, reason] = [false, 'InterfacesMissing'];
      else if (!c.podReady) [healthy, reason] = [false, 'PodNotReady'];
      else if (c.probe) {
        // failureThreshold probes in a row that did not come back in time fail the replica.
        if (!p?.everReturned) [healthy, reason] = [false, p && p.misses >= c.probe.failureThreshold ? 'ProbeFailed' : 'Probing'];
        else if (p.misses >= c.probe.failureThreshold) [healthy, reason] = [false, 'ProbeFailed'];
      }
      const prev = this.verdicts.get(c.key);
      if (!prev || prev.healthy !== healthy || prev.reason !== reason) {
        this.verdicts.set(c.key, { healthy, ...(reason ? { reason } : {}), since: prev && prev.healthy === healthy ? prev.since : new Date(this.now()) });
        if (!prev || prev.healthy !== healthy) changed.push(c.key);
      }
    }
    return { verdicts: new Map(this.verdicts), changed };
  }
}
