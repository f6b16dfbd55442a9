// run() through seine-exec (the agent's command runner) behaves as run() spawning the command itself: output,
// exit codes, signals, timeouts, env, stdin, commands that cannot start; concurrent commands get their own
// answers; without the helper, or after it died, commands still run.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CommandError, run, useCommandRunner, type RunOptions } from '../../src/host/exec.js';
import { ExecHelper } from '../../src/host/exec-helper.js';
import { eventually } from '../../src/util/wait.js';
import { removeDir, tempDir } from '../cni/helpers.js';

/** What run() gives, whatever it is: the result or the CommandError's fields. */
async function outcome(cmd: string, args: string[], opts: RunOptions = {}): Promise<unknown> {
  try {
    return { ok: await run(cmd, args, opts) };
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    return { exitCode: e.exitCode, signal: e.signal, stdout: e.stdout, stderr: e.stderr, message: e.message };
  }
}

const CASES: Array<[string, string[], RunOptions]> = [
  ['sh', ['-c', 'echo out; echo err >&2'], {}],
  ['sh', ['-c', 'echo partial; exit 3'], {}],
  ['sh', ['-c', 'kill -TERM $$'], {}],
  ['sh', ['-c', 'sleep 5'], { timeoutMs: 300 }],
  ['cat', [], { input: 'from stdin\n' }],
  ['sh', ['-c', 'echo "$ONLY:$HOME"'], { env: { ONLY: 'this', PATH: process.env.PATH } }],
  ['pwd', [], { cwd: '/tmp' }],
  ['no-such-command-here', [], {}],
  ['printf', ['\\377\\376 bytes'], {}],
];

describe('run() through seine-exec', () => {
  let dir: string;
  let bin: string;
  let helper: ExecHelper | undefined;

  beforeAll(() => {
    dir = tempDir('seine-exec-');
    bin = join(dir, 'seine-exec');
    execFileSync('bash', [resolve('scripts/build-go.sh'), bin, 'seine-exec'], { stdio: ['ignore', 'ignore', 'inherit'] });
  });
  afterEach(async () => {
    useCommandRunner(undefined);
    await helper?.stop();
    helper = undefined;
  });
  afterAll(() => removeDir(dir));

  it('gives what a spawn of its own gives, for every kind of outcome', async () => {
    const direct = [];
    for (const [cmd, args, opts] of CASES) direct.push(await outcome(cmd, args, opts));
    helper = new ExecHelper(bin);
    useCommandRunner(helper);
    const viaHelper = [];
    for (const [cmd, args, opts] of CASES) viaHelper.push(await outcome(cmd, args, opts));
    expect(viaHelper).toEqual(direct);
    // The cases cover success, exit codes, signals, timeouts and a command that cannot start.
    expect(direct).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ exitCode: 3 }),
        expect.objectContaining({ signal: 'SIGTERM' }),
        expect.objectContaining({ signal: 'SIGKILL', stderr: expect.stringMatching(/^timed out after 300 ms/) }),
        expect.objectContaining({ exitCode: null, message: expect.stringContaining('ENOENT') }),
      ]),
    );
  });

  it('answers concurrent commands each with its own output', async () => {
    helper = new ExecHelper(bin);
    useCommandRunner(helper);
    const n = Array.from({ length: 24 }, (_, i) => i);
    const outs = await Promise.all(n.map((i) => run('sh', ['-c', `sleep 0.0${i % 10}; echo $0`, String(i)])));
    expect(outs.map((o) => o.stdout.trim())).toEqual(n.map(String));
  });

  it('without its binary, commands are spawned by the caller', async () => {
    helper = new ExecHelper(join(dir, 'missing'));
    useCommandRunner(helper);
    expect((await run('echo', ['still runs'])).stdout).toBe('still runs\n');
    expect((await run('echo', ['and again'])).stdout).toBe('and again\n');
  });

  it('a helper that dies fails the commands in flight, and the next command starts it again', async () => {
    helper = new ExecHelper(bin);
    useCommandRunner(helper);
    expect((await run('echo', ['first'])).stdout).toBe('first\n');
    const pid = Number((await run('sh', ['-c', 'echo $PPID'])).stdout.trim());
    const pidFile = join(dir, 'sleep.pid');
    const inFlight = run('sh', ['-c', `echo $$ > ${pidFile}; exec sleep 30`]);
    const sleeper = await eventually('the command in flight has started', async () => (existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim()) || undefined, 10_000);
    process.kill(pid, 'SIGKILL');
    await expect(inFlight).rejects.toThrow(CommandError);
    // The orphan is this test's to remove.
    process.kill(Number(sleeper), 'SIGKILL');
    const again = Number((await run('sh', ['-c', 'echo $PPID'])).stdout.trim());
    expect(again).not.toBe(pid);
  });
});
