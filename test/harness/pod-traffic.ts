// Traffic that a test keeps running inside a pod while it breaks something: a long iperf3 it can stop by pid,
// and a steady series of new TCP connections whose outcomes and start times it can look at afterwards.
import { spawn } from 'node:child_process';
import type { V1Pod } from '@kubernetes/client-node';
import { commandLine } from '../../src/host/exec.js';
import type { Lab } from '../../src/lab/lab.js';
import { podExec, podNetns } from './lab.js';

export interface IperfInterval {
  sum: { bytes: number; start: number; retransmits?: number };
}

export interface IperfRun {
  /** iperf3's own pid (nsenter execs it), so the test can end exactly this run. */
  pid: number;
  /** The per-second intervals once iperf3 finished; rejects with its error when it did not finish cleanly. */
  done: Promise<{ intervals: IperfInterval[]; retransmits: number }>;
  /** Ends the run now (SIGKILL to its pid); `done` then rejects. */
  kill(): void;
}

/**
 * An iperf3 client in `pod` towards `serverIp` for `seconds`, reporting every second as JSON; `bitrate` (iperf3's
 * -b, e.g. '50M') keeps it from saturating the lab's userspace datapaths, where it would drop other tests' packets;
 * `port` is the server's (default 5201).
 */
export function startIperf(lab: Lab, pod: V1Pod, serverIp: string, seconds: number, bitrate?: string, port?: number): IperfRun {
  const args = ['-c', serverIp, '-t', String(seconds), '-i', '1', '-J', '--connect-timeout', '10000', ...(bitrate ? ['-b', bitrate] : []), ...(port ? ['-p', String(port)] : [])];
  const argv = commandLine('iperf3', args, podNetns(lab, pod));
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  // A run that outlives its length by a minute is stuck: end it so the test reports instead of hanging.
  const guard = setTimeout(() => child.kill('SIGKILL'), (seconds + 60) * 1000);
  const done = new Promise<{ intervals: IperfInterval[]; retransmits: number }>((resolve, reject) => {
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      let parsed: { intervals?: IperfInterval[]; end?: { sum_sent?: { retransmits?: number } }; error?: string } = {};
      try {
        parsed = JSON.parse(out) as typeof parsed;
      } catch {
        /* no JSON: the error below says what happened */
      }
      if (code === 0 && parsed.intervals && !parsed.error) resolve({ intervals: parsed.intervals, retransmits: parsed.end?.sum_sent?.retransmits ?? 0 });
      else reject(new Error(`iperf3 to ${serverIp} did not finish (exit ${code}${signal ? `, signal ${signal}` : ''}): ${parsed.error ?? (err.trim() || out.slice(0, 500))}`));
    });
  });
  done.catch(() => undefined);
  return {
    pid: child.pid!,
    done,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** The local ports of `pod`'s established TCP connections to `port`. */
export async function connectionPorts(lab: Lab, pod: V1Pod, port: number): Promise<number[]> {
  const out = await podExec(lab, pod, ['ss', '-Htn', 'state', 'established', `( dport = :${port} )`]);
  return out
    .split('\n')
    .map((l) => /:(\d+)\s+\S+:\d+\s*$/.exec(l.trim())?.[1])
    .filter((p): p is string => !!p)
    .map(Number);
}

export interface Attempt {
  /** When the attempt started (ms since the epoch). */
  at: number;
  ok: boolean;
}

/**
 * New TCP connections (`nc -z`: a handshake, both directions) from `pod` to `ip:port`, one started every
 * `everyMs` whatever the previous ones do, so a stretch of failures shows when it began and ended.
 */
export class ConnectionAttempts {
  readonly attempts: Attempt[] = [];
  private timer?: NodeJS.Timeout;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly lab: Lab,
    private readonly pod: V1Pod,
    private readonly ip: string,
    private readonly port: number,
    private readonly everyMs = 250,
    private readonly connectTimeoutS = 3,
  ) {}

  start(): this {
    this.timer = setInterval(() => this.once(), this.everyMs);
    return this;
  }

  private once(): void {
    const a: Attempt = { at: Date.now(), ok: false };
    const p = podExec(this.lab, this.pod, ['nc', '-z', '-w', String(this.connectTimeoutS), this.ip, String(this.port)], (this.connectTimeoutS + 20) * 1000)
      .then(() => void (a.ok = true), () => undefined)
      .then(() => {
        this.attempts.push(a);
        this.inFlight.delete(p);
      });
    this.inFlight.add(p);
  }

  /** Finished attempts that started at or after `since`, in order of their start. */
  since(since: number): Attempt[] {
    return this.attempts.filter((a) => a.at >= since).sort((x, y) => x.at - y.at);
  }

  /** Whether the last `n` finished attempts (by start) succeeded. */
  lastSucceeded(n: number): boolean {
    const done = [...this.attempts].sort((x, y) => x.at - y.at).slice(-n);
    return done.length === n && done.every((a) => a.ok);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await Promise.all([...this.inFlight]);
  }
}
