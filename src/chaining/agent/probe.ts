// Forwarding probes: a UDP packet injected into a replica's ingress port must come out of its egress port (as
// OVN's network-function health check does). Injection is an OpenFlow packet-out; the return is a packet-in
// from a table-0 flow on the egress port. Both travel on the agent's persistent OpenFlow connection to the
// bridge: no process is started per probe, so a busy node does not delay probes into false failures.
import { decodeCookie } from '../../ovs/openflow/index.js';
import type { OfConnection } from '../../ovs/openflow/wire/connection.js';
import type { PacketIn } from '../../ovs/openflow/wire/messages.js';
import { CookieKind, decodeChainObject } from '../datapath/layout.js';
import { internetChecksum } from '../../util/checksum.js';
import { NEXT_HOP_MAC, PROBE_DST, PROBE_PORT, PROBE_SRC, PROBE_SRC_MAC } from '../datapath/flows.js';

const ipBytes = (ip: string): number[] => ip.split('.').map(Number);
const macBytes = (mac: string): number[] => mac.split(':').map((h) => parseInt(h, 16));

/**
 * The probe frame, hex: Ethernet (to `dstMac`: the replica's ingress MAC for a Routed hop, the next-hop MAC for a
 * Transparent one, which a bridging CNF floods on) / IPv4 (TTL 64) / UDP to PROBE_PORT, with `payload`.
 */
export function probeFrame(dstMac: string, payload: string): Buffer {
  const data = [...Buffer.from(payload, 'utf8')];
  const udpLen = 8 + data.length;
  const udp = [PROBE_PORT >> 8, PROBE_PORT & 0xff, PROBE_PORT >> 8, PROBE_PORT & 0xff, udpLen >> 8, udpLen & 0xff, 0, 0, ...data];
  const totalLen = 20 + udpLen;
  const ip = [0x45, 0, totalLen >> 8, totalLen & 0xff, 0, 0, 0x40, 0, 64, 17, 0, 0, ...ipBytes(PROBE_SRC), ...ipBytes(PROBE_DST)];
  const c = internetChecksum(Uint8Array.from(ip));
  ip[10] = c >> 8;
  ip[11] = c & 0xff;
  const eth = [...macBytes(dstMac), ...macBytes(PROBE_SRC_MAC), 0x08, 0x00];
  return Buffer.from([...eth, ...ip, ...udp]);
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

/** Sends probes and reports the ones that came back, on a bridge's OpenFlow connection. */
export class ForwardingProber {
  private unsubscribe?: () => void;

  constructor(
    private readonly opts: {
      /** The agent's connection to the bridge's management socket. */
      connection: OfConnection;
      /** Called for every probe that came back. */
      onReturn: (key: string) => void;
    },
  ) {}

  start(): void {
    this.unsubscribe ??= this.opts.connection.onPacketIn((p) => this.packetIn(p));
  }

  private packetIn(p: PacketIn): void {
    const o = decodeChainObject(decodeCookie(p.cookie).object);
    if (o.kind === CookieKind.probe) this.opts.onReturn(probeKey(o.chain, o.hop, o.replica));
  }

  /**
   * Whether a probe that does not come back now says something about the replica. Not while the connection is
   * down (ovs-vswitchd restarting closes it), nor for OBSERVE_GRACE_MS after it (re)connected: a restarted
   * ovs-vswitchd has no flows until the agent's watchdog has put them back.
   */
  observing(now = Date.now()): boolean {
    const since = this.opts.connection.connectedSince;
    return this.unsubscribe !== undefined && since !== undefined && now - since >= OBSERVE_GRACE_MS;
  }

  /** Injects one probe into each target's ingress port. */
  async send(targets: readonly ProbeTarget[], seq: number): Promise<void> {
    if (!targets.length || !this.unsubscribe) return;
    await this.opts.connection.packetOut(
      targets.map((t) => ({ data: probeFrame(t.dstMac, `seine-probe ${probeKey(t.chain, t.hop, t.replica)} ${seq}`), actions: [{ type: 'output', port: t.ingressOfport }] })),
    );
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }
}
