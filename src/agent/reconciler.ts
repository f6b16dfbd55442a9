import { sandboxState, type SandboxState } from '../podif/sandbox.js';
import { logger } from '../util/log.js';
import { SerialPass } from '../util/serial.js';
import type { RecordedSandbox } from './pod-driver.js';

/** Between passes: each is a stat per sandbox, so a lost DEL is made good within seconds. */
export const RECONCILE_INTERVAL_MS = 3000;
/** Pod deletions come in bursts: one pass after the burst. */
const TRIGGER_DELAY_MS = 200;

export interface SandboxReconcilerDeps {
  /** The sandboxes the pod network and the hooks have records of (PodDriver). */
  sandboxes: () => Map<string, RecordedSandbox>;
  /** Releases everything of a sandbox: the hooks' attachments, then the pod network's. */
  release: (containerId: string) => Promise<void>;
  /** UIDs of this node's pods that exist and are not being deleted; undefined until they are known. */
  livePods: () => ReadonlySet<string> | undefined;
  /** Runs `fn` in turn with the CNI calls of `containerId` (so never beside an ADD or DEL of it). */
  serialize: (containerId: string, fn: () => Promise<void>) => Promise<void>;
  intervalMs?: number;
}

/**
 * CNI GC without waiting for a GC call: releases the attachments (the pod network's and the hooks', with
 * their addresses) of sandboxes whose network namespace is gone, or was replaced by another one at the same path,
 * when no live pod claims them. That is what a DEL lost while the agent was down would have done. A
 * sandbox whose namespace is still there is never touched, with or without a pod (a container that is not
 * a Kubernetes pod has none); one a live pod claims is left to its runtime's next ADD or DEL.
 */
export class SandboxReconciler {
  private readonly log = logger('reconciler');
  private timer?: NodeJS.Timeout;
  private soon?: NodeJS.Timeout;
  private readonly passes = new SerialPass(
    () => this.releaseVanished().catch((e: unknown) => this.log.error({ err: String(e) }, 'reconciliation pass failed')),
    () => this.stopped,
  );
  private stopped = false;

  constructor(private readonly d: SandboxReconcilerDeps) {}

  start(): void {
    this.timer = setInterval(() => this.trigger(0), this.d.intervalMs ?? RECONCILE_INTERVAL_MS);
    this.trigger(0);
  }

  /** A pass shortly (a pod was deleted, or the pods became known). */
  trigger(delayMs = TRIGGER_DELAY_MS): void {
    if (this.stopped || this.soon) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      void this.pass();
    }, delayMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.soon) clearTimeout(this.soon);
    await this.passes.current;
  }

  /** One pass; a pass asked for while one runs follows it. */
  pass(): Promise<void> {
    return this.passes.run();
  }

  /** Whether the sandbox is to be released now, and why. */
  private verdict(sb: RecordedSandbox): SandboxState | undefined {
    const state = sandboxState(sb.netns, sb.netnsId);
    if (state === 'present') return undefined;
    if (sb.podUid) {
      const live = this.d.livePods();
      if (!live || live.has(sb.podUid)) return undefined;
    }
    return state;
  }

  private async releaseVanished(): Promise<void> {
    for (const sb of this.d.sandboxes().values()) {
      if (this.stopped) return;
      if (!this.verdict(sb)) continue;
      await this.d.serialize(sb.containerId, async () => {
        // Looked at again in turn: an ADD that ran meanwhile may have made the sandbox anew.
        const now = this.d.sandboxes().get(sb.containerId);
        const state = now && this.verdict(now);
        if (!now || !state) return;
        await this.release(now, state);
      });
    }
  }

  private async release(sb: RecordedSandbox, state: SandboxState): Promise<void> {
    this.log.info({ containerId: sb.containerId, pod: sb.pod, netns: sb.netns, sandbox: state }, 'sandbox gone without its DEL; releasing its attachments');
    // The next pass tries again: what is left is still recorded.
    await this.d.release(sb.containerId).catch((e: unknown) => this.log.warn({ containerId: sb.containerId, err: String(e) }, 'releasing a vanished sandbox failed in part'));
  }
}
