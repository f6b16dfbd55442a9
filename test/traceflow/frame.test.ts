import type { TracePacket } from '../../src/traceflow/api/types.js';
import { buildFrame, capturedPacket, parseFrame, withTag, withVlan } from '../../src/traceflow/model/frame.js';
import { internetChecksum } from '../../src/util/checksum.js';

const SRC_MAC = '02:00:00:00:00:01';
const DST_MAC = '02:00:00:00:00:02';
const opts = { tag: 5, sourceMac: SRC_MAC, destinationMac: DST_MAC };
const tcp: TracePacket = { sourceIP: '10.0.0.1', destinationIP: '10.0.0.2', protocol: 'TCP', sourcePort: 1234, destinationPort: 80, tcpFlags: 2, ttl: 64 };
const udp: TracePacket = { sourceIP: '10.244.1.9', destinationIP: '10.96.0.10', protocol: 'UDP', sourcePort: 40000, destinationPort: 53, ttl: 7 };
const icmp: TracePacket = { sourceIP: '10.244.0.5', destinationIP: '192.0.2.1', protocol: 'ICMP', ttl: 1 };

const ETH = 14;
const IP = 20;

/** The test's own sum, written independently of the module's, so a shared mistake cannot hide. */
function onesSum(bytes: Buffer): number {
  const padded = bytes.length % 2 ? Buffer.concat([bytes, Buffer.alloc(1)]) : bytes;
  let s = 0;
  for (let i = 0; i < padded.length; i += 2) s += (padded[i]! << 8) | padded[i + 1]!;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return s;
}

function pseudoHeader(frame: Buffer): Buffer {
  const totalLength = frame.readUInt16BE(ETH + 2);
  return Buffer.concat([frame.subarray(ETH + 12, ETH + 20), Buffer.from([0, frame[ETH + 9]!]), Buffer.from([(totalLength - IP) >> 8, (totalLength - IP) & 0xff])]);
}

describe('internetChecksum', () => {
  it('is the RFC 1071 example, pads an odd byte, and sums to zero over a header holding it', () => {
    // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (after carries), checksum 220d.
    expect(internetChecksum(Buffer.from('0001f203f4f5f6f7', 'hex'))).toBe(0x220d);
    expect(internetChecksum(Buffer.from([0xab]))).toBe(internetChecksum(Buffer.from([0xab, 0x00])));
    expect(internetChecksum(Buffer.alloc(0))).toBe(0xffff);
    const withSum = Buffer.concat([Buffer.from('0001f203f4f5f6f7', 'hex'), Buffer.from([0x22, 0x0d])]);
    expect(internetChecksum(withSum)).toBe(0);
  });
});

describe('buildFrame', () => {
  it('lays a TCP SYN out byte for byte', () => {
    const frame = buildFrame(tcp, { ...opts, ipId: 0x1234, sequence: 0x01020304 });
    // Worked by hand: IP checksum ~(4514+0028+1234+4000+4006+0a00+0001+0a00+0002) = ~eb79 = 1486;
    // TCP checksum over the pseudo-header (0a00 0001 0a00 0002 0006 0014) and the segment = ~6838 = 97c7.
    const expected = [
      '020000000002', '020000000001', '0800',
      '45', '14', '0028', '1234', '4000', '40', '06', '1486', '0a000001', '0a000002',
      '04d2', '0050', '01020304', '00000000', '50', '02', 'faf0', '97c7', '0000',
    ].join('');
    expect(frame.toString('hex')).toBe(expected);
  });

  it('sets Ethernet II, IPv4 with DF, the tag as DSCP and the TTL', () => {
    for (const tag of [1, 5, 63]) {
      const f = buildFrame(tcp, { ...opts, tag });
      expect(f.readUInt16BE(12)).toBe(0x0800);
      expect(f[ETH]).toBe(0x45);
      expect(f[ETH + 1]).toBe(tag << 2);
      expect(f.readUInt16BE(ETH + 6)).toBe(0x4000);
      expect(f[ETH + 8]).toBe(64);
      expect(f.readUInt16BE(ETH + 2)).toBe(f.length - ETH);
    }
  });

  it.each([
    ['TCP', tcp, 6],
    ['UDP', udp, 17],
    ['ICMP', icmp, 1],
  ] as const)('%s: the IPv4 header and the L4 checksum verify', (_name, p, proto) => {
    for (let i = 0; i < 20; i++) {
      const f = buildFrame(p, opts);
      expect(f[ETH + 9]).toBe(proto);
      expect(onesSum(f.subarray(ETH, ETH + IP))).toBe(0xffff);
      const l4 = f.subarray(ETH + IP);
      if (proto === 1) expect(onesSum(l4)).toBe(0xffff);
      else expect(onesSum(Buffer.concat([pseudoHeader(f), l4]))).toBe(0xffff);
    }
  });

  it('TCP: sequence, ack 0, data offset 5, flags default to SYN, window 64240', () => {
    const { tcpFlags: _, ...noFlags } = tcp;
    const f = buildFrame(noFlags, { ...opts, sequence: 0xdeadbeef });
    const l4 = ETH + IP;
    expect(f.length).toBe(ETH + IP + 20);
    expect(f.readUInt32BE(l4 + 4)).toBe(0xdeadbeef);
    expect(f.readUInt32BE(l4 + 8)).toBe(0);
    expect(f[l4 + 12]).toBe(0x50);
    expect(f[l4 + 13]).toBe(2);
    expect(f.readUInt16BE(l4 + 14)).toBe(64240);
    expect(f.readUInt16BE(l4 + 18)).toBe(0);
    expect(buildFrame({ ...tcp, tcpFlags: 0x12 }, opts)[l4 + 13]).toBe(0x12);
  });

  it('UDP: ports, length, a non-zero checksum', () => {
    const f = buildFrame(udp, { ...opts, ipId: 7 });
    const l4 = ETH + IP;
    expect(f.readUInt16BE(l4)).toBe(40000);
    expect(f.readUInt16BE(l4 + 2)).toBe(53);
    expect(f.readUInt16BE(l4 + 4)).toBe(f.length - l4);
    expect(f.readUInt16BE(l4 + 6)).not.toBe(0);
    expect(f.readUInt16BE(ETH + 4)).toBe(7);
  });

  it('ICMP: an echo request with the identifier, sequence 1 and a 16-byte payload', () => {
    const f = buildFrame(icmp, { ...opts, icmpId: 0xbeef });
    const l4 = ETH + IP;
    expect(f[l4]).toBe(8);
    expect(f[l4 + 1]).toBe(0);
    expect(f.readUInt16BE(l4 + 4)).toBe(0xbeef);
    expect(f.readUInt16BE(l4 + 6)).toBe(1);
    expect(f.length - l4 - 8).toBe(16);
  });

  it('refuses what cannot be sent', () => {
    expect(() => buildFrame(tcp, { ...opts, tag: 0 })).toThrow(RangeError);
    expect(() => buildFrame(tcp, { ...opts, tag: 64 })).toThrow(RangeError);
    expect(() => buildFrame(tcp, { ...opts, tag: 2.5 })).toThrow(RangeError);
    const { sourcePort: _s, ...noSource } = tcp;
    const { destinationPort: _d, ...noDestination } = udp;
    expect(() => buildFrame(noSource, opts)).toThrow(RangeError);
    expect(() => buildFrame(noDestination, opts)).toThrow(RangeError);
    expect(() => buildFrame({ ...udp, destinationPort: 70000 }, opts)).toThrow(RangeError);
    expect(() => buildFrame(tcp, { ...opts, sourceMac: '02:00:00:00:00' })).toThrow(RangeError);
    expect(() => buildFrame(tcp, { ...opts, destinationMac: '02-00-00-00-00-02' })).toThrow(RangeError);
    expect(() => buildFrame(tcp, { ...opts, destinationMac: 'zz:00:00:00:00:02' })).toThrow(RangeError);
    expect(() => buildFrame({ ...tcp, sourceIP: '10.0.1' }, opts)).toThrow(RangeError);
    expect(() => buildFrame({ ...tcp, destinationIP: '256.0.0.1' }, opts)).toThrow(RangeError);
    expect(() => buildFrame({ ...icmp, destinationIP: 'fd00::1' }, opts)).toThrow(RangeError);
    expect(() => buildFrame({ ...icmp, ttl: 256 }, opts)).toThrow(RangeError);
  });
});

describe('parseFrame', () => {
  it('reads back what buildFrame wrote', () => {
    const base = { sourceMac: SRC_MAC, destinationMac: DST_MAC, dscp: 5 };
    expect(parseFrame(buildFrame(tcp, opts))).toEqual({ ...base, sourceIP: '10.0.0.1', destinationIP: '10.0.0.2', ttl: 64, protocol: 'TCP', sourcePort: 1234, destinationPort: 80, tcpFlags: 2 });
    expect(parseFrame(buildFrame(udp, opts))).toEqual({ ...base, sourceIP: '10.244.1.9', destinationIP: '10.96.0.10', ttl: 7, protocol: 'UDP', sourcePort: 40000, destinationPort: 53 });
    expect(parseFrame(buildFrame(icmp, { ...opts, tag: 63, sourceMac: 'AA:BB:CC:DD:EE:FF' }))).toEqual({ ...base, dscp: 63, sourceMac: 'aa:bb:cc:dd:ee:ff', sourceIP: '10.244.0.5', destinationIP: '192.0.2.1', ttl: 1, protocol: 'ICMP', icmpType: 8 });
  });

  it('skips an 802.1Q tag and ignores Ethernet padding', () => {
    const f = buildFrame(udp, opts);
    const tagged = Buffer.concat([f.subarray(0, 12), Buffer.from([0x81, 0x00, 0x00, 0x64]), f.subarray(12), Buffer.alloc(10)]);
    expect(parseFrame(tagged)).toEqual(parseFrame(f));
  });

  it('gives another protocol by number', () => {
    const f = buildFrame(icmp, opts);
    f[ETH + 9] = 47;
    expect(parseFrame(f)).toEqual({ sourceMac: SRC_MAC, destinationMac: DST_MAC, sourceIP: '10.244.0.5', destinationIP: '192.0.2.1', dscp: 5, ttl: 1, protocol: 47 });
  });

  it('returns undefined, never throws, for a cut frame', () => {
    for (const p of [tcp, udp, icmp]) {
      const f = buildFrame(p, opts);
      for (let n = 0; n < f.length; n++) expect(parseFrame(f.subarray(0, n))).toBeUndefined();
      const tagged = Buffer.concat([f.subarray(0, 12), Buffer.from([0x81, 0x00, 0x00, 0x64]), f.subarray(12)]);
      for (let n = 0; n < tagged.length; n++) expect(parseFrame(tagged.subarray(0, n))).toBeUndefined();
    }
  });

  it('returns undefined for a frame that is not IPv4', () => {
    const f = buildFrame(tcp, opts);
    const arp = Buffer.from(f);
    arp.writeUInt16BE(0x0806, 12);
    expect(parseFrame(arp)).toBeUndefined();
    const v6 = Buffer.from(f);
    v6.writeUInt16BE(0x86dd, 12);
    expect(parseFrame(v6)).toBeUndefined();
    const badVersion = Buffer.from(f);
    badVersion[ETH] = 0x65;
    expect(parseFrame(badVersion)).toBeUndefined();
    const badIhl = Buffer.from(f);
    badIhl[ETH] = 0x44;
    expect(parseFrame(badIhl)).toBeUndefined();
  });
});

describe('a live packet', () => {
  it('takes the tag in its DSCP bits, keeps its ECN bits and the rest, with a valid header checksum', () => {
    const frame = buildFrame(udp, { ...opts, tag: 1, ipId: 0x1234 });
    frame[ETH + 1] = 0x01; // DSCP 0, ECN ECT(1): as a pod sent it
    frame.writeUInt16BE(0, ETH + 10);
    frame.writeUInt16BE(internetChecksum(frame.subarray(ETH, ETH + IP)), ETH + 10);
    const tagged = withTag(frame, 42);
    expect(tagged[ETH + 1]).toBe((42 << 2) | 0x01);
    expect(onesSum(tagged.subarray(ETH, ETH + IP))).toBe(0xffff);
    expect(parseFrame(tagged)).toEqual({ ...parseFrame(frame), dscp: 42 });
    const differs = [...tagged].flatMap((b, i) => (b === frame[i] ? [] : [i]));
    expect(differs.every((i) => i === ETH + 1 || i === ETH + 10 || i === ETH + 11)).toBe(true);
    // The pod's frame itself is left as it was.
    expect(frame[ETH + 1]).toBe(0x01);
  });

  it('refuses a tag out of range or a frame that is not IPv4', () => {
    const frame = buildFrame(udp, opts);
    expect(() => withTag(frame, 0)).toThrow(RangeError);
    expect(() => withTag(frame, 64)).toThrow(RangeError);
    expect(() => withTag(Buffer.alloc(60), 5)).toThrow('not an IPv4 frame');
  });

  it('is reported as the packet the pod sent: addresses, ports, flags, TTL', () => {
    expect(capturedPacket(parseFrame(buildFrame(tcp, opts))!)).toEqual(tcp);
    expect(capturedPacket(parseFrame(buildFrame(udp, opts))!)).toEqual(udp);
    expect(capturedPacket(parseFrame(buildFrame(icmp, opts))!)).toEqual(icmp);
    expect(capturedPacket({ ...parseFrame(buildFrame(udp, opts))!, protocol: 47 })).toBeUndefined();
  });
});

describe('withVlan', () => {
  it('inserts an 802.1Q tag after the MAC addresses, which parseFrame reads through', () => {
    const plain = buildFrame(udp, opts);
    const tagged = withVlan(plain, 100);
    expect(tagged.length).toBe(plain.length + 4);
    expect(tagged.subarray(0, 12)).toEqual(plain.subarray(0, 12));
    expect([tagged.readUInt16BE(12), tagged.readUInt16BE(14)]).toEqual([0x8100, 100]);
    expect(tagged.subarray(16)).toEqual(plain.subarray(12));
    expect(parseFrame(tagged)).toEqual(parseFrame(plain));
    // Tagged already: as it is.
    expect(withVlan(tagged, 200)).toBe(tagged);
    expect(() => withVlan(plain, 4095)).toThrow(RangeError);
    expect(() => withVlan(Buffer.alloc(10), 100)).toThrow(RangeError);
  });
});
