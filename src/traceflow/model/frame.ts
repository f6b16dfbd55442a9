// The bytes of a trace's packet: the Ethernet II + IPv4 frame the agent injects at the source pod's port, and the
// reader for frames the datapath hands back. The trace's tag rides in the DSCP bits so the observation flows can
// match this one packet and nothing else.
import { randomInt } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { internetChecksum } from '../../util/checksum.js';
import { MAX_TAG, MIN_TAG, TCP_SYN, type TracePacket } from '../api/types.js';

export interface FrameOptions {
  /** The trace's DSCP tag, MIN_TAG..MAX_TAG. */
  tag: number;
  sourceMac: string;
  destinationMac: string;
  /** IPv4 identification; random when absent. */
  ipId?: number;
  /** TCP sequence number; random when absent. */
  sequence?: number;
  /** ICMP echo identifier; random when absent. */
  icmpId?: number;
}

export interface ParsedFrame {
  sourceMac: string;
  destinationMac: string;
  sourceIP: string;
  destinationIP: string;
  dscp: number;
  ttl: number;
  /** By name for the three a trace sends, otherwise the IP protocol number. */
  protocol: 'TCP' | 'UDP' | 'ICMP' | number;
  sourcePort?: number;
  destinationPort?: number;
  tcpFlags?: number;
  icmpType?: number;
}

const ETH_HEADER = 14;
const VLAN_TAG = 4;
const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_VLAN = 0x8100;
const IPV4_HEADER = 20;
const TCP_HEADER = 20;
const UDP_HEADER = 8;
const ICMP_HEADER = 8;
const IP_FLAG_DF = 0x4000;
const TCP_WINDOW = 64240;
const ICMP_ECHO_REQUEST = 8;
const PROTOCOL_NUMBERS = { TCP: 6, UDP: 17, ICMP: 1 } as const;
// Recognisable in a capture, and 16 bytes like the start of a ping's payload.
const ICMP_PAYLOAD = Buffer.from('seine-traceflow\0', 'latin1');

function macBytes(mac: string, what: string): Buffer {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac)) throw new RangeError(`${what} is not a MAC address: ${JSON.stringify(mac)}`);
  return Buffer.from(mac.replaceAll(':', ''), 'hex');
}

function ipv4Bytes(ip: string, what: string): Buffer {
  // Four-part decimal only: ipaddr.js would otherwise accept forms like '10.1' or hex that no API object carries.
  if (!ipaddr.IPv4.isValidFourPartDecimal(ip)) throw new RangeError(`${what} is not an IPv4 address: ${JSON.stringify(ip)}`);
  return Buffer.from(ipaddr.IPv4.parse(ip).toByteArray());
}

function checkUint(value: number, bits: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** bits) throw new RangeError(`${what} out of range: ${value}`);
  return value;
}

function port(value: number | undefined, what: string, protocol: string): number {
  if (value === undefined) throw new RangeError(`a ${protocol} packet needs a ${what}`);
  return checkUint(value, 16, what);
}

/** TCP and UDP checksums cover a pseudo-header of the addresses, protocol and segment length, then the segment. */
function transportChecksum(src: Buffer, dst: Buffer, protocol: number, segment: Buffer): number {
  const pseudo = Buffer.alloc(12);
  src.copy(pseudo, 0);
  dst.copy(pseudo, 4);
  pseudo[9] = protocol;
  pseudo.writeUInt16BE(segment.length, 10);
  return internetChecksum(Buffer.concat([pseudo, segment]));
}

function tcpSegment(p: TracePacket, opts: FrameOptions, src: Buffer, dst: Buffer): Buffer {
  const seg = Buffer.alloc(TCP_HEADER);
  seg.writeUInt16BE(port(p.sourcePort, 'source port', 'TCP'), 0);
  seg.writeUInt16BE(port(p.destinationPort, 'destination port', 'TCP'), 2);
  seg.writeUInt32BE(checkUint(opts.sequence ?? randomInt(0, 2 ** 32), 32, 'TCP sequence'), 4);
  // Acknowledgment 0 (bytes 8..11, already zero); data offset 5 words, no options.
  seg[12] = (TCP_HEADER / 4) << 4;
  seg[13] = checkUint(p.tcpFlags ?? TCP_SYN, 8, 'TCP flags');
  seg.writeUInt16BE(TCP_WINDOW, 14);
  seg.writeUInt16BE(transportChecksum(src, dst, PROTOCOL_NUMBERS.TCP, seg), 16);
  return seg;
}

function udpDatagram(p: TracePacket, src: Buffer, dst: Buffer): Buffer {
  const seg = Buffer.alloc(UDP_HEADER);
  seg.writeUInt16BE(port(p.sourcePort, 'source port', 'UDP'), 0);
  seg.writeUInt16BE(port(p.destinationPort, 'destination port', 'UDP'), 2);
  seg.writeUInt16BE(seg.length, 4);
  // In UDP a zero checksum means "none", so a computed zero is sent as its other representation (RFC 768).
  seg.writeUInt16BE(transportChecksum(src, dst, PROTOCOL_NUMBERS.UDP, seg) || 0xffff, 6);
  return seg;
}

function icmpEcho(opts: FrameOptions): Buffer {
  const msg = Buffer.alloc(ICMP_HEADER + ICMP_PAYLOAD.length);
  msg[0] = ICMP_ECHO_REQUEST;
  msg[1] = 0;
  msg.writeUInt16BE(checkUint(opts.icmpId ?? randomInt(0, 0x10000), 16, 'ICMP identifier'), 4);
  msg.writeUInt16BE(1, 6);
  ICMP_PAYLOAD.copy(msg, ICMP_HEADER);
  // ICMP has no pseudo-header: the checksum covers the message alone.
  msg.writeUInt16BE(internetChecksum(msg), 2);
  return msg;
}

/** The frame to inject for a trace's packet. Throws a RangeError for a tag, port, address or MAC that cannot be sent. */
export function buildFrame(p: TracePacket, opts: FrameOptions): Buffer {
  if (!Number.isInteger(opts.tag) || opts.tag < MIN_TAG || opts.tag > MAX_TAG) throw new RangeError(`tag must be ${MIN_TAG}..${MAX_TAG}: ${opts.tag}`);
  const dstMac = macBytes(opts.destinationMac, 'destination MAC');
  const srcMac = macBytes(opts.sourceMac, 'source MAC');
  const src = ipv4Bytes(p.sourceIP, 'source IP');
  const dst = ipv4Bytes(p.destinationIP, 'destination IP');
  const protocol = PROTOCOL_NUMBERS[p.protocol];
  if (protocol === undefined) throw new RangeError(`unsupported protocol: ${String(p.protocol)}`);
  const ttl = checkUint(p.ttl, 8, 'TTL');

  const l4 = p.protocol === 'TCP' ? tcpSegment(p, opts, src, dst) : p.protocol === 'UDP' ? udpDatagram(p, src, dst) : icmpEcho(opts);

  const ip = Buffer.alloc(IPV4_HEADER);
  ip[0] = (4 << 4) | (IPV4_HEADER / 4);
  // DSCP is the top six bits of the old TOS byte; ECN (the low two) stays 0.
  ip[1] = opts.tag << 2;
  ip.writeUInt16BE(IPV4_HEADER + l4.length, 2);
  ip.writeUInt16BE(checkUint(opts.ipId ?? randomInt(0, 0x10000), 16, 'IP identification'), 4);
  // Don't fragment: a trace's packet is small, and a fragment would carry no ports for the flows to match.
  ip.writeUInt16BE(IP_FLAG_DF, 6);
  ip[8] = ttl;
  ip[9] = protocol;
  src.copy(ip, 12);
  dst.copy(ip, 16);
  ip.writeUInt16BE(internetChecksum(ip), 10);

  const eth = Buffer.alloc(ETH_HEADER);
  dstMac.copy(eth, 0);
  srcMac.copy(eth, 6);
  eth.writeUInt16BE(ETHERTYPE_IPV4, 12);
  return Buffer.concat([eth, ip, l4]);
}

const macString = (b: Buffer, at: number): string => [...b.subarray(at, at + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
const ipString = (b: Buffer, at: number): string => ipaddr.fromByteArray([...b.subarray(at, at + 4)]).toString();

/** Reads an Ethernet II (optionally 802.1Q-tagged) IPv4 frame; undefined for anything else or anything cut short. */
export function parseFrame(frame: Buffer): ParsedFrame | undefined {
  if (frame.length < ETH_HEADER) return undefined;
  let at = 12;
  let ethertype = frame.readUInt16BE(at);
  if (ethertype === ETHERTYPE_VLAN) {
    if (frame.length < ETH_HEADER + VLAN_TAG) return undefined;
    at += VLAN_TAG;
    ethertype = frame.readUInt16BE(at);
  }
  if (ethertype !== ETHERTYPE_IPV4) return undefined;
  const ip = at + 2;
  if (frame.length < ip + IPV4_HEADER) return undefined;
  if (frame[ip]! >> 4 !== 4) return undefined;
  const ihl = (frame[ip]! & 0x0f) * 4;
  const totalLength = frame.readUInt16BE(ip + 2);
  // Trailing bytes past the IP total length are Ethernet padding; fewer bytes than it claims is a cut frame.
  if (ihl < IPV4_HEADER || totalLength < ihl || frame.length < ip + totalLength) return undefined;

  const number = frame[ip + 9]!;
  const name = (Object.keys(PROTOCOL_NUMBERS) as Array<keyof typeof PROTOCOL_NUMBERS>).find((k) => PROTOCOL_NUMBERS[k] === number);
  const parsed: ParsedFrame = {
    destinationMac: macString(frame, 0),
    sourceMac: macString(frame, 6),
    sourceIP: ipString(frame, ip + 12),
    destinationIP: ipString(frame, ip + 16),
    dscp: frame[ip + 1]! >> 2,
    ttl: frame[ip + 8]!,
    protocol: name ?? number,
  };

  // A later fragment starts mid-segment: it has no transport header to read.
  if ((frame.readUInt16BE(ip + 6) & 0x1fff) !== 0) return parsed;
  const l4 = ip + ihl;
  const l4Length = totalLength - ihl;
  switch (name) {
    case 'TCP':
      if (l4Length < TCP_HEADER) return undefined;
      return { ...parsed, sourcePort: frame.readUInt16BE(l4), destinationPort: frame.readUInt16BE(l4 + 2), tcpFlags: frame[l4 + 13]! };
    case 'UDP':
      if (l4Length < UDP_HEADER) return undefined;
      return { ...parsed, sourcePort: frame.readUInt16BE(l4), destinationPort: frame.readUInt16BE(l4 + 2) };
    case 'ICMP':
      if (l4Length < 4) return undefined;
      return { ...parsed, icmpType: frame[l4]! };
    default:
      return parsed;
  }
}

/**
 * Live traffic: the pod's own frame with the trace's tag in its DSCP bits (ECN kept) and the IPv4 header checksum
 * made anew; the rest of the frame is untouched. Throws a RangeError for a frame that is not IPv4.
 */
export function withTag(frame: Buffer, tag: number): Buffer {
  if (!Number.isInteger(tag) || tag < MIN_TAG || tag > MAX_TAG) throw new RangeError(`tag must be ${MIN_TAG}..${MAX_TAG}: ${tag}`);
  if (!parseFrame(frame)) throw new RangeError('not an IPv4 frame');
  const out = Buffer.from(frame);
  const ip = out.readUInt16BE(12) === ETHERTYPE_VLAN ? ETH_HEADER + VLAN_TAG : ETH_HEADER;
  const ihl = (out[ip]! & 0x0f) * 4;
  out[ip + 1] = (tag << 2) | (out[ip + 1]! & 0x03);
  out.writeUInt16BE(0, ip + 10);
  out.writeUInt16BE(internetChecksum(out.subarray(ip, ip + ihl)), ip + 10);
  return out;
}

/** A frame the source pod sent, as the trace's captured packet; undefined when it is not one of the three a trace follows. */
export function capturedPacket(f: ParsedFrame): TracePacket | undefined {
  if (f.protocol === 'ICMP') return { sourceIP: f.sourceIP, destinationIP: f.destinationIP, protocol: 'ICMP', ttl: f.ttl };
  if (f.protocol !== 'TCP' && f.protocol !== 'UDP') return undefined;
  return {
    sourceIP: f.sourceIP,
    destinationIP: f.destinationIP,
    protocol: f.protocol,
    ...(f.sourcePort !== undefined ? { sourcePort: f.sourcePort } : {}),
    ...(f.destinationPort !== undefined ? { destinationPort: f.destinationPort } : {}),
    ...(f.tcpFlags !== undefined ? { tcpFlags: f.tcpFlags } : {}),
    ttl: f.ttl,
  };
}

/** The frame with an 802.1Q tag of `vlan` (priority 0) after its MAC addresses, as a trunk carries it; an already tagged frame is returned as it is. */
export function withVlan(frame: Buffer, vlan: number): Buffer {
  if (!Number.isInteger(vlan) || vlan < 1 || vlan > 4094) throw new RangeError(`VLAN must be 1..4094: ${vlan}`);
  if (frame.length < ETH_HEADER) throw new RangeError('not an Ethernet frame');
  if (frame.readUInt16BE(12) === ETHERTYPE_VLAN) return frame;
  const tag = Buffer.alloc(VLAN_TAG);
  tag.writeUInt16BE(ETHERTYPE_VLAN, 0);
  tag.writeUInt16BE(vlan, 2);
  return Buffer.concat([frame.subarray(0, 12), tag, frame.subarray(12)]);
}
