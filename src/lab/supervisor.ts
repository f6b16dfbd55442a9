import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { commandLine } from '../host/exec.js';
import { killProcess, processRef, type ProcessRef, type ResourceLedger } from '../host/ledger.js';
import { logger } from '../util/log.js';

export interface SupervisedSpec {
  /** For logs and status. */
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** Network namespace path to run in (via nsenter). */
  netns?: string;
  /** stdout and stderr are appended here. */
  logFile: string;
  /** Restart when it exits: always (DaemonSet/Deployment), on failure, or never. */
  restart: 'always' | 'on-failure' | 'never';
}

const MIN_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 10_000;
/** A run this long resets the backoff, as kubelet's crash-loop backoff does. */
const STABLE_RUN_MS = 10_000;

/**
 * Runs one process and restarts it with exponential backoff when it dies, as kubelet does for a
 * container. Every pid is recorded in the ledger while it lives.
 */
export class SupervisedProcess {
  private child?: ChildProcess;
  private ref?: ProcessRef;
  private stopped = false;
  private backoffMs = MIN_BACKOFF_MS;
  private timer?: NodeJS.Timeout;
  private startedAt = 0;
  restarts = 0;
  lastExit?: { code: number | null; signal: NodeJS.Signals | null };
  private readonly log;
  private exitWaiters: Array<() => void> = [];

  constructor(
    readonly spec: SupervisedSpec,
    private readonly ledger: ResourceLedger,
    private readonly onExit?: (p: SupervisedProcess) => void,
  ) {
    this.log = logger('supervisor', { process: spec.name });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  start(): void {
    this.stopped = false;
    this.launch();
  }

  private launch(): void {
    const argv = commandLine(this.spec.command, this.spec.args, this.spec.netns);
    mkdirSync(dirname(this.spec.logFile), { recursive: true });
    const fd = openSync(this.spec.logFile, 'a');
    const child = spawn(argv[0]!, argv.slice(1), { env: this.spec.env ?? process.env, stdio: ['ignore', fd, fd], detached: true });
    closeSync(fd);
    this.child = child;
    this.startedAt = Date.now();
    if (child.pid !== undefined) this.ref = this.ledger.process(child.pid, this.spec.name);
    child.on('error', (e) => this.log.warn({ err: e.message }, 'spawn failed'));
    child.on('exit', (code, signal) => {
      if (child.pid !== undefined) this.ledger.forgetProcess(child.pid);
      this.child = undefined;
      this.ref = undefined;
      this.lastExit = { code, signal };
      this.exitWaiters.splice(0).forEach((w) => w());
      this.onExit?.(this);
      if (this.stopped) return;
      const failed = code !== 0;
      if (this.spec.restart === 'never' || (this.spec.restart === 'on-failure' && !failed)) return;
      if (Date.now() - this.startedAt > STABLE_RUN_MS) this.backoffMs = MIN_BACKOFF_MS;
      const delay = this.backoffMs;
      this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
      this.log.warn({ code, signal, delayMs: delay }, 'process exited; restarting');
      this.timer = setTimeout(() => {
        this.timer = undefined;
        if (this.stopped) return;
        this.restarts++;
        this.launch();
      }, delay);
    });
  }

  /** Resolves when the current process exits (at once if none runs). */
  waitExit(): Promise<void> {
    if (!this.child) return Promise.resolve();
    return new Promise((r) => this.exitWaiters.push(r));
  }

  /** Stops supervising and terminates the process (SIGTERM, then SIGKILL after `graceMs`). */
  async stop(graceMs = 3000): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const ref = this.ref ?? (this.child?.pid !== undefined ? processRef(this.child.pid, this.spec.name) : undefined);
    if (!ref) return;
    const exited = this.waitExit();
    await killProcess(ref, graceMs);
    await exited;
  }

  /** Kills the process abruptly (SIGKILL) without stopping supervision: a crash, for tests. */
  crash(): void {
    if (this.child?.pid !== undefined) process.kill(this.child.pid, 'SIGKILL');
  }
}
