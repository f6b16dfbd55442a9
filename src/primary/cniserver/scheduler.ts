// Ordering of driver calls: one at a time per container, containers in parallel up to a bound (in arrival
// order), and GC alone (it decides what is stale from the set of attachments, so none may be half made while
// it runs).
import { Semaphore } from 'async-mutex';

type Waiter = () => void;

/**
 * Attachment calls running at once: enough to overlap their waits on OVS, iproute2 and the API server. A
 * burst of ADDs (a node filling with pods) then completes in arrival order at the node's pace, instead of
 * every call sharing the CPU until all of them reach the request timeout together and are rolled back,
 * which made no progress at all on a busy node; a call whose time ran out while it waited never starts.
 */
export const DEFAULT_MAX_CONCURRENT_CALLS = 4;

export class RequestScheduler {
  private readonly slots: Semaphore;
  private readonly containers = new Map<string, Promise<unknown>>();
  /** Attachment calls admitted (queued behind their container, or running) and not finished. */
  private admitted = 0;
  /** GCs waiting or running: while any is, no new attachment call is admitted (GC is not starved). */
  private gcs = 0;
  private gcChain: Promise<unknown> = Promise.resolve();
  private readonly afterGc: Waiter[] = [];
  private readonly whenIdle: Waiter[] = [];

  constructor(maxConcurrentCalls = DEFAULT_MAX_CONCURRENT_CALLS) {
    if (!(Number.isInteger(maxConcurrentCalls) && maxConcurrentCalls > 0)) throw new RangeError(`maxConcurrentCalls must be a positive integer (got ${maxConcurrentCalls})`);
    this.slots = new Semaphore(maxConcurrentCalls);
  }

  /** Runs `fn` once every earlier call for `containerId` has finished and no GC is pending. */
  attachment<T>(containerId: string, fn: () => Promise<T>): Promise<T> {
    // Admission is synchronous when no GC is pending, so a GC requested right after counts this call.
    if (this.gcs === 0) return this.admit(containerId, fn);
    return (async () => {
      while (this.gcs > 0) await new Promise<void>((r) => this.afterGc.push(r));
      return this.admit(containerId, fn);
    })();
  }

  private admit<T>(containerId: string, fn: () => Promise<T>): Promise<T> {
    this.admitted++;
    const prev = this.containers.get(containerId) ?? Promise.resolve();
    const inTurn = () => this.slots.runExclusive(fn);
    const next = prev.then(inTurn, inTurn).finally(() => {
      this.admitted--;
      if (this.admitted === 0) this.whenIdle.splice(0).forEach((w) => w());
    });
    const tail = next.catch(() => undefined);
    this.containers.set(containerId, tail);
    void tail.then(() => {
      if (this.containers.get(containerId) === tail) this.containers.delete(containerId);
    });
    return next;
  }

  /**
   * Runs `fn` after every attachment call admitted before it has finished; GCs run one at a time.
   * Aborting `signal` before `fn` has started withdraws the call (rejecting with the abort reason), so
   * that a hung attachment call does not, through a waiting GC, hold up every other container.
   */
  exclusive<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    this.gcs++;
    let counted = true;
    let started = false;
    let wake: Waiter | undefined;
    const uncount = () => {
      if (!counted) return;
      counted = false;
      this.gcs--;
      if (this.gcs === 0) this.afterGc.splice(0).forEach((w) => w());
    };
    const onAbort = () => {
      if (started) return;
      uncount();
      wake?.();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const run = async (): Promise<T> => {
      while (this.admitted > 0 && !signal?.aborted) {
        await new Promise<void>((r) => {
          wake = r;
          this.whenIdle.push(r);
        });
      }
      if (signal?.aborted) throw signal.reason;
      started = true;
      return fn();
    };
    const next = this.gcChain.then(run, run).finally(() => {
      signal?.removeEventListener('abort', onAbort);
      uncount();
    });
    this.gcChain = next.catch(() => undefined);
    return next;
  }

  /** Containers with calls queued or running (introspection, tests). */
  get busyContainers(): number {
    return this.containers.size;
  }
}
