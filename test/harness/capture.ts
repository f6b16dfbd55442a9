import { spawn } from 'node:child_process';
import { commandLine } from '../../src/host/exec.js';

export interface Capture {
  /** Resolves once tcpdump listens (it says so on stderr), so no packet sent afterwards is missed. */
  ready: Promise<void>;
  /** tcpdump's output once it exits (after `-c N` packets, or killed after `timeoutMs`). */
  done: Promise<string>;
  /** Ends the capture now; its output so far. */
  stop(): Promise<string>;
}

/** tcpdump in a namespace the test made; `args` are tcpdump's (interface, filter, -c ...). */
export function startCapture(netns: string, args: string[], timeoutMs = 60_000): Capture {
  const argv = commandLine('tcpdump', ['-n', '-l', ...args], netns);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
      if (/listening on/.test(err)) resolve();
    });
    child.on('close', () => reject(new Error(`tcpdump ended before listening: ${err.trim()}`)));
  });
  const done = new Promise<string>((resolve) => {
    child.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
  // Only `done` may be left unawaited when `ready` failed.
  ready.catch(() => undefined);
  const stop = (): Promise<string> => {
    child.kill('SIGINT');
    return done;
  };
  return { ready, done, stop };
}

/** Captures while `fn` runs (from the moment tcpdump listens); the printed lines. */
export async function captureWhile(netns: string, args: string[], fn: () => Promise<void>): Promise<string[]> {
  const c = startCapture(netns, args, 600_000);
  let out: string;
  try {
    await c.ready;
    await fn();
    // Let the last frames be printed.
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    out = await c.stop();
  }
  return out.split('\n').filter((l) => l.trim());
}
