// Peer address blocks (pure): each text parsed once and kept, the same answers as the address-set math of
// src/ipam, and peers written as the fewest CIDRs.
import ipaddr from 'ipaddr.js';
import { cidrRange, cidrsToRanges, rangesToCidrs } from '../../../src/ipam/ipv4-set.js';
import { intToIpv4 } from '../../../src/ipam/subnets.js';
import { blockCidrs } from '../../../src/policy/agent/resolve.js';
import { addressBlock, cidrBlock, coveringCidrs } from '../../../src/policy/datapath/addresses.js';

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
}

/** A deterministic sequence, so that a failure can be replayed. */
function prng(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

describe('peer address blocks', () => {
  it('gives each CIDR its range and its network address, as ipaddr.js reads it', () => {
    for (const text of ['10.1.2.3/24', '10.1.2.0/24', '0.0.0.0/0', '255.255.255.255/32', '10.0.0.5/30', '010.0.0.1/8', '10.0.0.1/08', '192.168.1.1/31']) {
      const [lo, hi] = cidrRange(text);
      const prefix = ipaddr.IPv4.parseCIDR(text)[1];
      expect({ text, ...cidrBlock(text) }).toEqual({ text, first: lo, last: hi, cidr: `${intToIpv4(lo)}/${prefix}` });
    }
    expect(cidrBlock('10.1.2.3/24').cidr).toBe('10.1.2.0/24');
    expect(addressBlock('10.1.2.3')).toEqual({ first: cidrRange('10.1.2.3/32')[0], last: cidrRange('10.1.2.3/32')[1], cidr: '10.1.2.3/32' });
  });

  it('refuses what ipaddr.js refuses, with its error', () => {
    for (const bad of ['10.0.0.1/33', '10.0.0.1', '10.0.0.300/24', 'fd00::/64', '10.0.0.1/', '/24', '10.0.0.1/24/32']) {
      expect({ bad, error: errorOf(() => cidrBlock(bad)) }).toEqual({ bad, error: errorOf(() => ipaddr.IPv4.parseCIDR(bad)) });
      expect(errorOf(() => cidrBlock(bad))).toMatch(/^ipaddr: /);
    }
    expect(() => addressBlock('10.0.0.300')).toThrow(/ipaddr/);
  });

  it('keeps answering right past its bound (older entries are parsed again)', () => {
    const texts = Array.from({ length: 120_000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`);
    for (const t of texts) cidrBlock(t);
    for (const i of [0, 1, 59_999, 60_000, 119_999]) expect(cidrBlock(texts[i]!).first).toBe(cidrRange(texts[i]!)[0]);
  });

  it('writes peers as the fewest CIDRs, as the address-set math does (overlapping, touching, repeated blocks)', () => {
    const rnd = prng(42);
    for (let round = 0; round < 300; round++) {
      const texts = Array.from({ length: Math.floor(rnd() * 40) }, () => {
        const a = `10.0.${Math.floor(rnd() * 4)}.${Math.floor(rnd() * 256)}`;
        return rnd() < 0.2 ? a : `${a}/${24 + Math.floor(rnd() * 9)}`;
      });
      expect(coveringCidrs(texts.map(addressBlock))).toEqual(rangesToCidrs(cidrsToRanges(texts)));
    }
    expect(coveringCidrs(['10.0.0.1', '10.0.0.0/32', '10.0.0.2/31', '10.0.0.9/32'].map(addressBlock))).toEqual(['10.0.0.0/30', '10.0.0.9/32']);
    expect(coveringCidrs([])).toEqual([]);
  });

  it('takes an ipBlock\'s excepts out of its CIDR', () => {
    expect(blockCidrs({ cidr: '10.0.0.7/24' })).toEqual(['10.0.0.0/24']);
    expect(blockCidrs({ cidr: '10.0.0.0/24', except: ['10.0.0.128/25', '10.0.0.0/26'] })).toEqual(['10.0.0.64/26']);
    expect(blockCidrs({ cidr: '10.0.0.0/30', except: [] })).toEqual(['10.0.0.0/30']);
    expect(() => blockCidrs({ cidr: '10.0.0.0/24', except: ['bad'] })).toThrow(/ipaddr/);
  });
});
