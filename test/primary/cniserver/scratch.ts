import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ResourceLedger, reapStaleLedgers } from '../../../src/host/ledger.js';
import { TEST_LEDGER_ROOT } from '../../harness/sandbox.js';

export interface ProcResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * A test's scratch directory (sockets, state files, builds) and the processes it starts, recorded in
 * a ledger under TEST_LEDGER_ROOT: `close()` removes them, and if the test process dies first, the
 * next test run does (processes are killed by pid and start time, never by name).
 */
export class Scratch {
  private constructor(readonly ledger: ResourceLedger) {}

  static async create(tag: string): Promise<Scratch> {
    await reapStaleLedgers(TEST_LEDGER_ROOT);
    return new Scratch(ResourceLedger.create(join(TEST_LEDGER_ROOT, `${tag}${randomBytes(3).toString('hex')}`)));
  }

  get dir(): string {
    return this.ledger.dir;
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  /** Runs a program with exactly `env` (plus PATH) and `input` on stdin; never rejects on a non-zero exit. */
  exec(path: string, env: Record<string, string>, input: string | Buffer = '', timeoutMs = 20_000): Promise<ProcResult> {
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      const child = spawn(path, [], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
      if (child.pid) this.ledger.process(child.pid, `exec ${path}`);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const forget = () => {
        clearTimeout(timer);
        if (child.pid) this.ledger.forgetProcess(child.pid);
      };
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e) => {
        forget();
        reject(e);
      });
      child.on('close', (code, signal) => {
        forget();
        resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), ms: performance.now() - t0 });
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(input);
    });
  }

  /** Kills what is still running, removes the directory. */
  close(): Promise<void> {
    return this.ledger.release();
  }
}
