import { spawn } from 'node:child_process';

/** A failed host command, carrying what was run and what it said. */
export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly stdout: string,
    readonly signal: NodeJS.Signals | null = null,
  ) {
    const how = signal ? `signal ${signal}` : `exit ${exitCode}`;
    super(`command failed (${how}): ${argv.join(' ')}${stderr.trim() ? `: ${stderr.trim()}` : ''}`);
    this.name = 'CommandError';
  }
}

export interface RunOptions {
  /** Written to the command's stdin. */
  input?: string;
  /** Network namespace path; the command runs under `nsenter --net=PATH`. */
  netns?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  cwd?: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Quotes one word for a POSIX shell. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** argv as executed, with the nsenter prefix when a netns is given. */
export function commandLine(cmd: string, args: readonly string[], netns?: string): string[] {
  return netns ? ['nsenter', `--net=${netns}`, '--', cmd, ...args] : [cmd, ...args];
}

/** A CommandRunner cannot run anything now: run() spawns the command itself. */
export class RunnerUnavailable extends Error {}

/** How a CommandRunner's command ended. */
export interface RunnerOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** It could not be started, in Node's words ("spawn ip ENOENT"). */
  error?: string;
  timedOut?: boolean;
}

/**
 * iproute2 batch lines and follow-up commands, step by step, each step in a namespace: what IpRoute's apply
 * methods would run as a script, for a runner that does it without processes.
 */
export interface IpStepsRequest {
  /** Where steps without a namespace of their own run (undefined: the runner's own). */
  netns?: string;
  steps: Array<{ netns?: string; lines: readonly string[]; followUps?: ReadonlyArray<readonly string[]> }>;
  /** Every line and command is tried; failures are reported but do not stop the rest (`ip -force`). */
  force?: boolean;
  /** The exit code of a failure: failCode, plus the step's index when stepCodes. */
  failCode: number;
  stepCodes?: boolean;
}

/** What runs commands for run() instead of a spawn of this process (the agent's ExecHelper). */
export interface CommandRunner {
  /** Rejects with RunnerUnavailable when it cannot run anything now. */
  execute(argv: readonly string[], opts: RunOptions): Promise<RunnerOutcome>;
  /** Does the steps itself; `unsupported` (nothing done) when they hold something it does not know. */
  ipSteps?(req: IpStepsRequest): Promise<RunnerOutcome & { unsupported?: string }>;
}

let runner: CommandRunner | undefined;

/** Every later run() goes through `r` (undefined: spawned by this process again). */
export function useCommandRunner(r: CommandRunner | undefined): void {
  runner = r;
}

/** Runs a command to completion; rejects with CommandError on non-zero exit, signal or timeout. */
export async function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const argv = commandLine(cmd, args, opts.netns);
  if (runner) {
    let r: RunnerOutcome | undefined;
    try {
      r = await runner.execute(argv, opts);
    } catch (e) {
      // The runner is not there: spawned here instead. Any other failure is the command's.
      if (!(e instanceof RunnerUnavailable)) throw new CommandError(argv, null, e instanceof Error ? e.message : String(e), '');
    }
    if (r) {
      if (r.error !== undefined) throw new CommandError(argv, null, r.error, '');
      const stderr = r.timedOut ? `timed out after ${opts.timeoutMs} ms\n${r.stderr}` : r.stderr;
      if (r.code === 0 && !r.timedOut) return { stdout: r.stdout, stderr };
      throw new CommandError(argv, r.code, stderr, r.stdout, r.signal);
    }
  }
  return spawnRun(argv, opts);
}

/**
 * Has the runner do iproute2 steps without processes. False: there is no such runner, or it does not know
 * something in them (nothing was done; run the script). A failure throws the CommandError the script, run as
 * `argv`, would have.
 */
export async function runIpStepsNatively(req: IpStepsRequest, argv: readonly string[]): Promise<boolean> {
  if (!runner?.ipSteps) return false;
  let r: (RunnerOutcome & { unsupported?: string }) | undefined;
  try {
    r = await runner.ipSteps(req);
  } catch (e) {
    if (e instanceof RunnerUnavailable) return false;
    throw new CommandError(argv, null, e instanceof Error ? e.message : String(e), '');
  }
  if (r.unsupported !== undefined) return false;
  if (r.code === 0) return true;
  throw new CommandError(argv, r.code, r.stderr, r.stdout, r.signal);
}

function spawnRun(argv: string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, opts.timeoutMs)
      : undefined;
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(new CommandError(argv, null, e.message, ''));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      let stderr = Buffer.concat(err).toString('utf8');
      if (timedOut) stderr = `timed out after ${opts.timeoutMs} ms\n${stderr}`;
      if (code === 0 && !timedOut) resolve({ stdout, stderr });
      else reject(new CommandError(argv, code, stderr, stdout, signal));
    });
    child.stdin.on('error', () => {
      /* the command may exit before reading its stdin; its exit status tells the story */
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Like run, but resolves false instead of throwing when the command fails. */
export async function succeeds(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<boolean> {
  try {
    await run(cmd, args, opts);
    return true;
  } catch (e) {
    if (e instanceof CommandError) return false;
    throw e;
  }
}
