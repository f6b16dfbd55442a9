import { execFile } from 'node:child_process';

/** What a command printed and its exit status, however it exits (a test asserts on both). */
export interface CommandOutcome {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `cmd` with `args` (and `input` on stdin); never rejects. `env` replaces the environment (a test's
 * process.env is jest's copy, which child processes do not see).
 */
export function runCommand(cmd: string, args: string[], input?: string, timeoutMs = 180_000, env?: NodeJS.ProcessEnv): Promise<CommandOutcome> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: timeoutMs, ...(env ? { env } : {}) }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
    // A command that exits before reading its input makes the write fail with EPIPE: its exit code tells.
    if (input !== undefined) child.stdin?.on('error', () => undefined).end(input);
  });
}
