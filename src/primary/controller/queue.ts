/**
 * A work queue of keys processed one at a time, as client-go's workqueue: a key queued while waiting is queued
 * once, a key queued while being processed is processed again afterwards, and failed keys come back after an
 * exponential per-key backoff. One worker keeps the allocator free of interleavings.
 */
export class WorkQueue {
  private readonly pending: string[] = [];
  private readonly queued = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private wake: (() => void) | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;

  constructor(
    private readonly baseDelayMs = 100,
    private readonly maxDelayMs = 30_000,
  ) {}

  add(key: string): void {
    if (this.stopped || this.queued.has(key)) return;
    this.queued.add(key);
    this.pending.push(key);
    this.wake?.();
  }

  addAfter(key: string, delayMs: number): void {
    if (this.stopped || this.timers.has(key)) return;
    const t = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    this.timers.set(key, t);
  }

  /** Requeues a failed key after its backoff (doubling per consecutive failure). */
  retry(key: string): number {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    const delay = Math.min(this.baseDelayMs * 2 ** (n - 1), this.maxDelayMs);
    this.addAfter(key, delay);
    return delay;
  }

  /** Resets a key's backoff after it succeeded. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  get length(): number {
    return this.pending.length;
  }

  /** Starts the worker; `process` errors are the worker's to handle (they are caught and the key retried). */
  start(process: (key: string) => Promise<void>, onError: (key: string, err: unknown) => void): void {
    this.running ??= (async () => {
      while (!this.stopped) {
        const key = this.pending.shift();
        if (key === undefined) {
          await new Promise<void>((r) => (this.wake = r));
          this.wake = undefined;
          continue;
        }
        this.queued.delete(key);
        try {
          await process(key);
        } catch (e) {
          onError(key, e);
          this.retry(key);
        }
      }
    })();
  }

  /** Stops taking keys; resolves when the key in progress (if any) is done. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.wake?.();
    await this.running;
  }
}
