// Host commands through seine-exec (cmd/seine-exec): one long-lived small process forks them for the agent.
// Forking from the agent's large heap blocked its event loop for about 12 ms per command (a quarter of its CPU
// under the CNI ADD benchmark); the helper's fork is cheap and off the agent's loop. It also does IpRoute's steps
// (a pod interface's veth, addresses, routes, offloads, sysctls) itself with rtnetlink: no process at all.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { logger, type Logger } from '../util/log.js';
import { repoRoot } from '../util/paths.js';
import { RunnerUnavailable, type CommandRunner, type IpStepsRequest, type RunnerOutcome, type RunOptions } from './exec.js';

/** Built with the plugin by scripts/build-go.sh. */
export const SEINE_EXEC_BINARY = join(repoRoot(), 'dist', 'bin', 'seine-exec');

/** One finished command, as the helper reports it. */
export interface HelperReply extends RunnerOutcome {
  id: number;
  /** An ipSteps request held something the helper does not do itself; nothing was done. */
  unsupported?: string;
}

export class ExecHelper implements CommandRunner {
  private child: ChildProcessWithoutNullStreams | undefined;
  private readonly pending = new Map<number, { resolve: (r: HelperReply) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private stopped = false;
  /** It could not be started at all: commands are spawned by the agent itself from then on. */
  private broken = false;
  private readonly log: Logger;

  constructor(
    private readonly binary = SEINE_EXEC_BINARY,
    log?: Logger,
  ) {
    this.log = log ?? logger('exec-helper');
  }

  /** Starts the helper (again, after it died). */
  private ensure(): ChildProcessWithoutNullStreams {
    if (this.stopped || this.broken) throw new RunnerUnavailable('the exec helper is not running');
    if (this.child) return this.child;
    const child = spawn(this.binary, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    child.on('error', (e) => {
      // Never started: nothing in flight ran, so each falls back to a spawn of its own.
      this.broken = true;
      this.gone(child, `cannot run ${this.binary}: ${e.message}`, true);
    });
    // 'close', not 'exit': every reply already written has been read by then.
    child.on('close', (code, signal) => this.gone(child, `exited (${signal ?? `code ${code}`})`, false));
    child.stdin.on('error', () => undefined);
    child.stderr.on('data', (b: Buffer) => this.log.warn({ stderr: b.toString('utf8').trim() }, 'exec helper'));
    createInterface({ input: child.stdout }).on('line', (line) => {
      let r: HelperReply;
      try {
        r = JSON.parse(line) as HelperReply;
      } catch {
        this.log.error({ line: line.slice(0, 200) }, 'exec helper answered something else than a reply');
        return;
      }
      const p = this.pending.get(r.id);
      this.pending.delete(r.id);
      p?.resolve(r);
    });
    return child;
  }

  private gone(child: ChildProcessWithoutNullStreams, why: string, neverRan: boolean): void {
    if (this.child !== child) return;
    this.child = undefined;
    if (!this.stopped) this.log.warn({ why, inFlight: this.pending.size }, this.broken ? 'exec helper cannot run; the agent spawns commands itself' : 'exec helper is gone; it is started again for the next command');
    // A command in flight when the helper died may or may not have run: the caller sees a failure, as if it had
    // been killed.
    for (const p of this.pending.values()) p.reject(neverRan ? new RunnerUnavailable(why) : new Error(`exec helper ${why}`));
    this.pending.clear();
  }

  /** Runs argv; RunnerUnavailable when the helper cannot be started. */
  execute(argv: readonly string[], opts: RunOptions): Promise<HelperReply> {
    const env = opts.env ? Object.entries(opts.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`])) : undefined;
    return this.send({ argv, ...(env ? { env } : {}), ...(opts.cwd ? { cwd: opts.cwd } : {}), ...(opts.input ? { input: opts.input } : {}), ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}) });
  }

  /** iproute2 steps done by the helper with rtnetlink, no process (cmd/seine-exec/steps.go). */
  ipSteps(req: IpStepsRequest): Promise<HelperReply> {
    return this.send({ ipSteps: req });
  }

  private send(body: object): Promise<HelperReply> {
    let child: ChildProcessWithoutNullStreams;
    try {
      child = this.ensure();
    } catch (e) {
      return Promise.reject(e instanceof RunnerUnavailable ? e : new RunnerUnavailable(String(e)));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      child.stdin.write(`${JSON.stringify({ id, ...body })}\n`);
    });
  }

  /** Closes the helper's stdin (it exits at once) and waits for it to be gone; later commands are spawned here. */
  async stop(): Promise<void> {
    this.stopped = true;
    const child = this.child;
    if (!child) return;
    await new Promise<void>((resolve) => {
      child.once('close', () => resolve());
      child.stdin.end();
    });
  }
}
