// Forwarding probes: a UDP packet injected into a replica's ingress port must come out of its egress port (as
// OVN's network-function health check does). Injection is an OpenFlow packet-out; the return is a packet-in
// from a table-0 flow on the egress port, read from a long-running `ovs-ofctl monitor`.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { run } from '../../host/exec.js';
import { decodeCookie } from '../../ovs/openflow/index.js';
import { logger } from '../../util/log.js';
import { CookieKind, decodeChainObject } from '../datapath/layout.js';
import { NEXT_HOP_MAC, PROBE_DST, PROBE_PORT, PROBE_SRC, PROBE_SRC_MAC } from '../datapath/flows.js';

const ipBytes = (ip: string): number[] => ip.split('.').map(Number);
const macBytes = (mac: string): number[] => mac.split(':').map((h) => parseInt(h, 16));

function checksum(bytes: number[]): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i]! << 8) + (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * The probe frame, hex: Ethernet (to `dstMac`: the replica's ingress MAC for a Routed hop, the next-hop MAC for a
 * Transparent one, which a bridging CNF floods on) / IPv4 (TTL 64) / UDP to PROBE_PORT, with `payload`.
 */
export function probeFrame(dstMac: string, payload: string): string {
  const data = [...Buffer.from(payload, 'utf8')];
  const udpLen = 8 + data.length;
  const udp = [PROBE_PORT >> 8, PROBE_PORT & 0xff, PROBE_PORT >> 8, PROBE_PORT & 0xff, udpLen >> 8, udpLen & 0xff, 0, 0, ...data];
  const totalLen = 20 + udpLen;
  const ip = [0x45, 0, totalLen >> 8, totalLen & 0xff, 0, 0, 0x40, 0, 64, 17, 0, 0, ...ipBytes(PROBE_SRC), ...ipBytes(PROBE_DST)];
  const c = checksum(ip);
  ip[10] = c >> 8;
  ip[11] = c & 0xff;
  const eth = [...macBytes(dstMac), ...macBytes(PROBE_SRC_MAC), 0x08, 0x00];
  return Buffer.from([...eth, ...ip, ...udp]).toString('hex');
}

export interface ProbeTarget {
  chain: number;
  hop: number;
  replica: number;
  ingressOfport: number;
  /** Where the frame is addressed: the ingress MAC (Routed) or NEXT_HOP_MAC (Transparent). */
  dstMac: string;
}

export function probeDestinationMac(mode: 'Transparent' | 'Routed', ingressMac: string): string {
  return mode === 'Routed' ? ingressMac : NEXT_HOP_MAC;
}

/** Longer than the agent's datapath watchdog period (2 s) plus a restore. */
export const OBSERVE_GRACE_MS = 4000;

export const probeKey = (chain: number, hop: number, replica: number): string => `${chain}/${hop}/${replica}`;

/** Sends probes (all targets in one ovs-ofctl bundle) and reports the returns seen by a monitor process. */
export class ForwardingProber {
  private readonly log = logger('chain-probe');
  private monitor?: ChildProcess;
  private stopped = false;
  private restartTimer?: NodeJS.Timeout;
  /** When the running monitor was started; undefined while there is none. */
  private monitorSince?: number;

  constructor(
    private readonly opts: {
      /** ovs-ofctl switch target of the bridge (unix:RUNDIR/BRIDGE.mgmt). */
      target: string;
      /** Open vSwitch's run directory: ovs-ofctl monitor makes its control socket there. */
      rundir: string;
      /** Called for every probe that came back. */
      onReturn: (key: string) => void;
    },
  ) {}

  start(): void {
    this.stopped = false;
    this.spawnMonitor();
  }

  private spawnMonitor(): void {
    if (this.stopped) return;
    // A service connection (the management socket) gets packet-ins only once it sets a miss length (128).
    // ovs-ofctl block-buffers its output into a pipe: line buffering makes each packet-in arrive as it happens.
    const child = spawn('stdbuf', ['-oL', 'ovs-ofctl', '-O', 'OpenFlow15', 'monitor', this.opts.target, '128'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OVS_RUNDIR: this.opts.rundir } });
    this.monitor = child;
    this.monitorSince = Date.now();
    const onLine = (line: string): void => {
      const m = /cookie=(0x[0-9a-f]+)/.exec(line);
      if (!m || !/PACKET_IN/.test(line)) return;
      const o = decodeChainObject(decodeCookie(BigInt(m[1]!)).object);
      if (o.kind === CookieKind.probe) this.opts.onReturn(probeKey(o.chain, o.hop, o.replica));
    };
    // Where ovs-ofctl prints the messages it receives differs between its versions and modes: read both streams.
    createInterface({ input: child.stdout }).on('line', onLine);
    createInterface({ input: child.stderr }).on('line', onLine);
    child.on('exit', (code, signal) => {
      if (this.monitor === child) {
        this.monitor = undefined;
        this.monitorSince = undefined;
      }
      if (this.stopped) return;
      this.log.warn({ code, signal }, 'probe monitor exited; restarting in 1 s');
      this.restartTimer = setTimeout(() => this.spawnMonitor(), 1000);
    });
  }

  /**
   * Whether a probe that does not come back now says something about the replica. Not while the monitor is down
   * (ovs-vswitchd restarting closes its connection), nor for OBSERVE_GRACE_MS after it (re)connected: a restarted
   * ovs-vswitchd has no flows until the agent's watchdog has put them back.
   */
  observing(now = Date.now()): boolean {
    return this.monitorSince !== undefined && now - this.monitorSince >= OBSERVE_GRACE_MS;
  }

  /** Injects one probe into each target's ingress port. */
  async send(targets: readonly ProbeTarget[], seq: number): Promise<void> {
    if (!targets.length || this.stopped) return;
    const lines = targets.map((t) => `packet-out in_port=controller packet=${probeFrame(t.dstMac, `seine-probe ${probeKey(t.chain, t.hop, t.replica)} ${seq}`)} actions=output:${t.ingressOfport}`);
    await run('ovs-ofctl', ['-O', 'OpenFlow15', 'bundle', this.opts.target, '-'], { input: lines.join('\n') + '\n', timeoutMs: 10_000 });
  }

  stop(): void {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.monitor?.kill('SIGTERM');
    this.monitor = undefined;
  }
}
