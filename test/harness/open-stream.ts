// A TCP stream with no set length, for a test whose disruptions take as long as they take on a busy machine: an
// iperf3 client run without -t, ended by the test. On SIGINT iperf3 still reports every second it carried.
import { spawn } from 'node:child_process';
import type { V1Pod } from '@kubernetes/client-node';
import { commandLine } from '../../src/host/exec.js';
import type { Lab } from '../../src/lab/lab.js';
import { podNetns } from './lab.js';
import type { IperfInterval } from './pod-traffic.js';

/** iperf3's JSON report is written once it has been told to end; this bounds how long that may take. */
const REPORT_WAIT_MS = 30_000;

export interface OpenStreamReport {
  intervals: IperfInterval[];
  retransmits: number;
}

export interface OpenStream {
  /** iperf3's own pid (nsenter execs it). */
  pid: number;
  /** Ends the stream (SIGINT) and resolves with its per-second report; rejects when the stream had already failed. */
  end(): Promise<OpenStreamReport>;
  /** Ends it at once without a report (SIGKILL), for clean-up; harmless when it is over. */
  kill(): void;
}

/** An iperf3 stream from `pod` to `serverIp:port` at `bitrate` (iperf3's -b) until end() is called. */
export function startOpenStream(lab: Lab, pod: V1Pod, serverIp: string, bitrate: string, port = 5201): OpenStream {
  const argv = commandLine('iperf3', ['-c', serverIp, '-p', String(port), '-t', '0', '-i', '1', '-J', '-b', bitrate, '--connect-timeout', '10000'], podNetns(lab, pod));
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let ending = false;
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  const report = closed.then(({ code, signal }) => {
    let parsed: { intervals?: IperfInterval[]; end?: { sum_sent?: { retransmits?: number } }; error?: string } = {};
    try {
      parsed = JSON.parse(out) as typeof parsed;
    } catch {
      /* no JSON: the error below says what happened */
    }
    // Ended by us, iperf3 says "interrupt - the client has terminated" (exit 1): that is the normal end here.
    const interrupted = ending && /interrupt/.test(parsed.error ?? '');
    if (parsed.intervals && (interrupted || (code === 0 && !parsed.error))) return { intervals: parsed.intervals, retransmits: parsed.end?.sum_sent?.retransmits ?? 0 };
    throw new Error(`iperf3 stream to ${serverIp}:${port} failed${ending ? '' : ' before it was ended'} (exit ${code}${signal ? `, signal ${signal}` : ''}): ${parsed.error ?? (err.trim() || out.slice(0, 500))}`);
  });
  report.catch(() => undefined);
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;
  return {
    pid: child.pid!,
    async end() {
      ending = true;
      if (alive()) child.kill('SIGINT');
      const guard = setTimeout(() => alive() && child.kill('SIGKILL'), REPORT_WAIT_MS);
      try {
        return await report;
      } finally {
        clearTimeout(guard);
      }
    },
    kill: () => {
      if (alive()) child.kill('SIGKILL');
    },
  };
}

/** The longest run of consecutive seconds that carried no data. */
export function longestStall(intervals: readonly IperfInterval[]): number {
  let longest = 0;
  let run = 0;
  for (const i of intervals) {
    run = i.sum.bytes === 0 ? run + 1 : 0;
    longest = Math.max(longest, run);
  }
  return longest;
}
