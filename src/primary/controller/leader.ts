// Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics: a lease is taken over only
// when its record has not changed for leaseDuration as observed by this process's own clock (no trust in the
// other replica's clock), the leader renews every retryPeriod, and stops leading when it could not renew
// within renewDeadline (shorter than leaseDuration, so it has stopped before anyone else may start).
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease, type V1LeaseSpec } from '@kubernetes/client-node';
import { apiMessage, isNotFound } from '../../k8s/api.js';
import { logger, type Logger } from '../../util/log.js';

export interface LeaderElectionOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  leaseName: string;
  /** This replica's name in the lease (`holderIdentity`). */
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  /** Called when this replica becomes leader; not awaited (renewal goes on meanwhile). */
  onStartedLeading: () => void | Promise<void>;
  /** Called when it stops leading (lost lease or stop()); awaited before the lease is released. */
  onStoppedLeading: () => void | Promise<void>;
  log?: Logger;
}

/** A wait that stop() cuts short. */
class Sleeper {
  private timer: NodeJS.Timeout | undefined;
  private wakeUp: (() => void) | undefined;
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wakeUp = resolve;
      this.timer = setTimeout(resolve, ms);
    });
  }
  wake(): void {
    if (this.timer) clearTimeout(this.timer);
    this.wakeUp?.();
  }
}

function timeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** The hostname+pid identity used outside a pod. */
export function defaultIdentity(env: NodeJS.ProcessEnv, hostname: string, pid: number): string {
  return env.POD_NAME || `${hostname}_${pid}`;
}

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly log: Logger;
  private readonly sleeper = new Sleeper();
  private stopped = false;
  private leading = false;
  private loop: Promise<void> | undefined;
  /** The lease record as last seen, and when (local clock) it last changed. */
  private observed = '';
  private observedAt = 0;
  private lastRenewAt = 0;

  constructor(private readonly opts: LeaderElectionOptions) {
    this.api = opts.kubeConfig.makeApiClient(CoordinationV1Api);
    this.log = opts.log ?? logger('controller.leader', { lease: `${opts.namespace}/${opts.leaseName}`, identity: opts.identity });
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Local time of the last successful acquire or renew while leading. */
  get lastRenewTime(): number {
    return this.lastRenewAt;
  }

  /** Runs the election in the background until stop(). */
  start(): void {
    this.loop ??= this.run().catch((e: unknown) => this.log.error({ err: String(e) }, 'leader election loop failed'));
  }

  /** Stops competing; a leader first stops acting, then releases the lease so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.sleeper.wake();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      // Candidate: try every retryPeriod (with jitter, so replicas do not move in lockstep).
      while (!this.stopped && !(await this.tryAcquireOrRenew())) await this.sleeper.sleep(this.opts.retryPeriodMs * (1 + Math.random() * 0.2));
      if (this.stopped) return;
      this.leading = true;
      this.log.info('became leader');
      void Promise.resolve()
        .then(() => this.opts.onStartedLeading())
        .catch((e: unknown) => this.log.error({ err: String(e) }, 'onStartedLeading failed'));
      // Leader: renew every retryPeriod; give up once renewDeadline has passed without a renewal.
      while (!this.stopped) {
        await this.sleeper.sleep(this.opts.retryPeriodMs);
        if (this.stopped) break;
        if (await this.tryAcquireOrRenew()) continue;
        if (Date.now() - this.lastRenewAt >= this.opts.renewDeadlineMs) {
          this.log.warn({ sinceRenewMs: Date.now() - this.lastRenewAt }, 'could not renew the lease in time; stopped leading');
          break;
        }
      }
      this.leading = false;
      try {
        await this.opts.onStoppedLeading();
      } catch (e) {
        this.log.error({ err: String(e) }, 'onStoppedLeading failed');
      }
      if (this.stopped) await this.release();
    }
  }

  private spec(now: Date, prior: V1LeaseSpec | undefined, wasHolder: boolean): V1LeaseSpec {
    const t = new V1MicroTime(now.getTime());
    return {
      holderIdentity: this.opts.identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(this.opts.leaseDurationMs / 1000)),
      acquireTime: wasHolder && prior?.acquireTime ? prior.acquireTime : t,
      renewTime: t,
      leaseTransitions: !prior ? 0 : wasHolder ? (prior.leaseTransitions ?? 0) : (prior.leaseTransitions ?? 0) + 1,
    };
  }

  /** One attempt; true when this replica holds the lease afterwards. Failures are false, never thrown. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, leaseName: name } = this.opts;
    // Calls must end well within the renew deadline, else a hung request would hide a lost lease.
    const callMs = Math.max(100, Math.min(this.opts.renewDeadlineMs / 2, 5000));
    const now = new Date();
    let lease: V1Lease;
    try {
      lease = await timeout(this.api.readNamespacedLease({ name, namespace }), callMs, 'reading the lease');
    } catch (e) {
      if (!isNotFound(e)) {
        this.log.debug({ err: apiMessage(e) }, 'could not read the lease');
        return false;
      }
      try {
        await timeout(this.api.createNamespacedLease({ namespace, body: { metadata: { name, namespace }, spec: this.spec(now, undefined, false) } }), callMs, 'creating the lease');
        this.observe(JSON.stringify({ holder: this.opts.identity, renew: now.toISOString() }));
        this.lastRenewAt = Date.now();
        return true;
      } catch (err) {
        this.log.debug({ err: apiMessage(err) }, 'could not create the lease');
        return false;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    this.observe(JSON.stringify({ holder, renew: String(spec.renewTime ?? ''), dur: spec.leaseDurationSeconds, tr: spec.leaseTransitions }));
    const wasHolder = holder === this.opts.identity;
    const durationMs = (spec.leaseDurationSeconds ?? Math.ceil(this.opts.leaseDurationMs / 1000)) * 1000;
    if (holder && !wasHolder && this.observedAt + durationMs > Date.now()) return false;
    try {
      // The resourceVersion makes this a compare-and-swap: of two replicas taking an expired lease, one wins.
      const body: V1Lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { ...lease.metadata, name, namespace }, spec: this.spec(now, spec, wasHolder) };
      await timeout(this.api.replaceNamespacedLease({ name, namespace, body }), callMs, 'updating the lease');
    } catch (e) {
      this.log.debug({ err: apiMessage(e) }, 'could not update the lease');
      return false;
    }
    if (!wasHolder) this.log.info({ previousHolder: holder || undefined }, 'took over the lease');
    this.observedAt = Date.now();
    this.lastRenewAt = Date.now();
    return true;
  }

  private observe(record: string): void {
    if (record !== this.observed) {
      this.observed = record;
      this.observedAt = Date.now();
    }
  }

  /** Hands the lease back (holder cleared, 1 s duration) after a clean stop, as client-go's ReleaseOnCancel. */
  private async release(): Promise<void> {
    const { namespace, leaseName: name } = this.opts;
    try {
      const lease = await this.api.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== this.opts.identity) return;
      const t = new V1MicroTime(Date.now());
      const body: V1Lease = { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: t, acquireTime: t } };
      await this.api.replaceNamespacedLease({ name, namespace, body });
      this.log.info('released the lease');
    } catch (e) {
      this.log.warn({ err: apiMessage(e) }, 'could not release the lease; it expires by itself');
    }
  }
}
