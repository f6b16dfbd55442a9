import { KubeConfig, ListWatch, Watch, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { logger } from '../util/log.js';

export type ObjectHandler<T> = (obj: T) => void;

export interface InformerOptions<T extends KubernetesObject> {
  kubeConfig: KubeConfig;
  /** Collection path, e.g. /api/v1/pods. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  fieldSelector?: string;
  /** For logs. */
  name: string;
  /** Restart the watch after this long without any event (guards against a silently dead stream). */
  maxIdleMs?: number;
}

const MIN_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 15_000;

/**
 * An informer that keeps going. client-node's ListWatch stops for good on any non-410 watch error and its
 * watch timeout is ineffective, so this restarts it with exponential backoff and a watchdog.
 */
/** Watch restarts of this process's informers, by informer name (for the metrics). */
export const watchRestarts = new Map<string, number>();

export class ResilientInformer<T extends KubernetesObject> {
  private readonly lw: ListWatch<T>;
  private readonly log;
  private stopped = true;
  private backoffMs = MIN_BACKOFF_MS;
  private restartTimer?: NodeJS.Timeout;
  private watchdog?: NodeJS.Timeout;
  private lastActivity = Date.now();

  constructor(private readonly opts: InformerOptions<T>) {
    this.log = logger('informer', { informer: opts.name });
    this.lw = new ListWatch<T>(opts.path, new Watch(opts.kubeConfig), opts.list, false, opts.labelSelector, opts.fieldSelector);
    const touch = (): void => {
      this.lastActivity = Date.now();
    };
    this.lw.on('add', touch);
    this.lw.on('update', touch);
    this.lw.on('delete', touch);
    this.lw.on('connect', () => {
      touch();
      this.backoffMs = MIN_BACKOFF_MS;
    });
    this.lw.on('error', (err: unknown) => this.scheduleRestart(err));
  }

  on(event: 'add' | 'update' | 'delete', handler: ObjectHandler<T>): this {
    this.lw.on(event, handler);
    return this;
  }

  /** Resolves once the initial list has been delivered. */
  async start(): Promise<void> {
    this.stopped = false;
    const maxIdle = this.opts.maxIdleMs ?? 300_000;
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastActivity > maxIdle) {
        this.log.debug('watch idle too long; restarting');
        this.lastActivity = Date.now();
        void this.lw.stop().then(() => this.restartNow());
      }
    }, Math.min(maxIdle, 30_000));
    this.watchdog.unref();
    await this.lw.start();
  }

  /**
   * Starts, retrying every `everyMs` while the list fails (e.g. a CRD not installed yet) until it works or
   * `cancelled()` says to give up; `onFirstFailure` hears the first failure.
   */
  async startRetrying(opts: { everyMs: number; cancelled: () => boolean; onFirstFailure: (err: unknown) => void }): Promise<void> {
    for (let attempt = 0; !opts.cancelled(); attempt++) {
      try {
        await this.start();
        return;
      } catch (e) {
        if (attempt === 0) opts.onFirstFailure(e);
        await this.stop();
        await new Promise((r) => setTimeout(r, opts.everyMs));
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.watchdog) clearInterval(this.watchdog);
    await this.lw.stop();
  }

  list(namespace?: string): readonly T[] {
    return this.lw.list(namespace);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.lw.get(name, namespace);
  }

  private scheduleRestart(err: unknown): void {
    if (this.stopped || this.restartTimer) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
    this.log.warn({ err: String(err), delayMs: delay }, 'watch failed; restarting');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.restartNow();
    }, delay);
  }

  private restartNow(): void {
    if (this.stopped) return;
    watchRestarts.set(this.opts.name, (watchRestarts.get(this.opts.name) ?? 0) + 1);
    this.lw.start().catch((e: unknown) => this.scheduleRestart(e));
  }
}
