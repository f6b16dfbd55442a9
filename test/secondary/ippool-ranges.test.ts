import { blockSize } from '../../src/secondary/ippool/state.js';
import { parseIpv4, parseIpv4Cidr, PoolLayout, PoolSpecError, type IPPoolSpec } from '../../src/secondary/ippool/index.js';

const spec = (s: Partial<IPPoolSpec> & { ipRanges: IPPoolSpec['ipRanges'] }): IPPoolSpec => ({ subnetInfo: { gateway: '10.10.0.1', prefixLength: 24 }, ...s });
const ip = (s: string): number => parseIpv4(s)!;

/** The first `n` addresses lowestFree hands out, taking each as it goes. */
function firstN(layout: PoolLayout, n: number, taken = new Set<number>()): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const next = layout.lowestFree(taken);
    if (next === undefined) break;
    out.push(next);
    taken.add(ip(next));
  }
  return out;
}

describe('address parsing', () => {
  it('accepts dotted quads only', () => {
    expect(parseIpv4('10.0.0.1')).toBe(0x0a000001);
    expect(parseIpv4('255.255.255.255')).toBe(0xffffffff);
    for (const bad of ['10.1', '10.0.0.01', '10.0.0.256', 'fd00::1', '', ' 10.0.0.1', 7]) expect(parseIpv4(bad)).toBeUndefined();
  });

  it('reads CIDRs as intervals, host bits allowed', () => {
    expect(parseIpv4Cidr('10.1.2.3/24')).toEqual([ip('10.1.2.0'), ip('10.1.2.255')]);
    expect(parseIpv4Cidr('0.0.0.0/0')).toEqual([0, 0xffffffff]);
    expect(parseIpv4Cidr('10.1.2.3/32')).toEqual([ip('10.1.2.3'), ip('10.1.2.3')]);
    for (const bad of ['10.1.2.3', '10.1.2.3/33', '10.1.2.3/', '10.1/8', 'x/8']) expect(parseIpv4Cidr(bad)).toBeUndefined();
  });
});

describe('PoolLayout', () => {
  it('skips network, gateway and broadcast of a whole-subnet range', () => {
    const l = PoolLayout.parse(spec({ ipRanges: [{ cidr: '10.10.0.0/24' }] }));
    expect(l.subnet).toBe('10.10.0.0/24');
    expect(l.total).toBe(253);
    expect(firstN(l, 3)).toEqual(['10.10.0.2', '10.10.0.3', '10.10.0.4']);
    expect(firstN(l, 300)).toHaveLength(253);
    expect(firstN(l, 300).at(-1)).toBe('10.10.0.254');
    expect([l.classify('10.10.0.0'), l.classify('10.10.0.1'), l.classify('10.10.0.255'), l.classify('10.10.0.7')]).toEqual(['reserved', 'reserved', 'reserved', 'ok']);
  });

  it('hands out the lowest free address across ranges, whatever their order, skipping exclusions', () => {
    const l = PoolLayout.parse(
      spec({
        ipRanges: [{ start: '10.10.0.200', end: '10.10.0.202' }, { cidr: '10.10.0.8/30' }, { start: '10.10.0.100', end: '10.10.0.104' }],
        exclude: ['10.10.0.9', '10.10.0.100/31', '10.10.0.103', '192.168.0.0/16'],
      }),
    );
    expect(l.total).toBe(3 + 4 - 1 + 5 - 3);
    expect(firstN(l, 20)).toEqual(['10.10.0.8', '10.10.0.10', '10.10.0.11', '10.10.0.102', '10.10.0.104', '10.10.0.200', '10.10.0.201', '10.10.0.202']);
    expect(l.describeRanges()).toBe('10.10.0.8/30, 10.10.0.100-10.10.0.104, 10.10.0.200-10.10.0.202');
    expect(l.classify('10.10.0.101')).toBe('excluded');
    expect(l.classify('10.10.0.50')).toBe('outside');
    expect(l.classify('10.10.0.1')).toBe('outside');
    expect(l.classify('nonsense')).toBe('invalid');
  });

  it('reuses the lowest address freed, and fills holes first', () => {
    const l = PoolLayout.parse(spec({ ipRanges: [{ cidr: '10.10.0.0/29' }] }));
    const taken = new Set([ip('10.10.0.2'), ip('10.10.0.4'), ip('10.10.0.5')]);
    expect(l.lowestFree(taken)).toBe('10.10.0.3');
    taken.add(ip('10.10.0.3'));
    expect(l.lowestFree(taken)).toBe('10.10.0.6');
    taken.add(ip('10.10.0.6'));
    // The range is a /29 inside the /24 subnet: .7 is no broadcast address here, .0 and .1 are reserved.
    expect(l.lowestFree(taken)).toBe('10.10.0.7');
    taken.add(ip('10.10.0.7'));
    expect(l.lowestFree(taken)).toBeUndefined();
    expect(l.countAllowed([...taken, ip('10.99.0.1')])).toBe(6);
  });

  it('has no network or broadcast address in /31 and /32 subnets', () => {
    const p31 = PoolLayout.parse({ ipRanges: [{ cidr: '10.0.0.0/31' }], subnetInfo: { gateway: '10.0.0.0', prefixLength: 31 } });
    expect([p31.total, firstN(p31, 5)]).toEqual([1, ['10.0.0.1']]);
    const p32 = PoolLayout.parse({ ipRanges: [{ cidr: '10.0.0.9/32' }], subnetInfo: { gateway: '10.0.0.1', prefixLength: 24 } });
    expect([p32.total, firstN(p32, 5)]).toEqual([1, ['10.0.0.9']]);
  });

  it('keeps the gateway out when it lies inside a range', () => {
    const l = PoolLayout.parse({ ipRanges: [{ start: '10.20.0.1', end: '10.20.0.5' }], subnetInfo: { gateway: '10.20.0.3', prefixLength: 16, vlan: 100 } });
    expect(firstN(l, 10)).toEqual(['10.20.0.1', '10.20.0.2', '10.20.0.4', '10.20.0.5']);
    expect([l.subnet, l.gateway, l.prefixLength, l.vlan]).toEqual(['10.20.0.0/16', '10.20.0.3', 16, 100]);
  });

  it('finds the lowest free address of a /16 with most addresses taken', () => {
    const l = PoolLayout.parse({ ipRanges: [{ cidr: '10.30.0.0/16' }], subnetInfo: { gateway: '10.30.0.1', prefixLength: 16 } });
    const taken = new Set<number>();
    for (let n = ip('10.30.0.2'); n < ip('10.30.250.0'); n++) taken.add(n);
    expect(l.lowestFree(taken)).toBe('10.30.250.0');
  });

  it.each([
    ['no ranges', { ipRanges: [] }, 'ipRanges: must list at least one range'],
    ['cidr and start mixed', { ipRanges: [{ cidr: '10.10.0.0/28', start: '10.10.0.1' }] }, 'ipRanges[0]: must have either cidr, or start and end'],
    ['start without end', { ipRanges: [{ start: '10.10.0.1' }] }, 'ipRanges[0]: must have either cidr, or start and end'],
    ['bad CIDR', { ipRanges: [{ cidr: '10.10.0.0/40' }] }, 'ipRanges[0].cidr: "10.10.0.0/40" is not an IPv4 CIDR'],
    ['bad start', { ipRanges: [{ start: '10.10.0.x', end: '10.10.0.9' }] }, 'ipRanges[0].start: "10.10.0.x" is not an IPv4 address'],
    ['start after end', { ipRanges: [{ start: '10.10.0.9', end: '10.10.0.2' }] }, 'ipRanges[0]: start 10.10.0.9 is after end 10.10.0.2'],
    ['range outside the subnet', { ipRanges: [{ cidr: '10.10.0.0/23' }] }, 'ipRanges[0]: 10.10.0.0/23 is not inside 10.10.0.0/24'],
    ['overlapping ranges', { ipRanges: [{ cidr: '10.10.0.0/25' }, { start: '10.10.0.100', end: '10.10.0.200' }] }, 'ipRanges[1]: overlaps ipRanges[0]'],
    ['bad exclusion', { ipRanges: [{ cidr: '10.10.0.0/24' }], exclude: ['10.10.0.300'] }, 'exclude[0]: "10.10.0.300" is not an IPv4 address or CIDR'],
    ['bad gateway', { ipRanges: [{ cidr: '10.10.0.0/24' }], subnetInfo: { gateway: 'fd00::1', prefixLength: 24 } }, 'subnetInfo.gateway: "fd00::1" is not an IPv4 address'],
    ['prefix 33', { ipRanges: [{ cidr: '10.10.0.0/24' }], subnetInfo: { gateway: '10.10.0.1', prefixLength: 33 } }, 'subnetInfo.prefixLength: 33 is not an integer from 1 to 32'],
    ['VLAN 4095', { ipRanges: [{ cidr: '10.10.0.0/24' }], subnetInfo: { gateway: '10.10.0.1', prefixLength: 24, vlan: 4095 } }, 'subnetInfo.vlan: 4095 is not an integer from 0 to 4094'],
    ['nothing left', { ipRanges: [{ start: '10.10.0.1', end: '10.10.0.2' }], exclude: ['10.10.0.2'] }, 'ipRanges: no address left to hand out'],
  ])('refuses %s', (_what, s, problem) => {
    let err: unknown;
    try {
      PoolLayout.parse(spec(s as IPPoolSpec));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PoolSpecError);
    expect((err as PoolSpecError).problems.join('\n')).toContain(problem);
  });
});

describe('blocks', () => {
  const layout = PoolLayout.parse(spec({ ipRanges: [{ cidr: '10.10.0.0/24' }], exclude: ['10.10.0.20'] }));
  const run = (size: number, covered: Array<[string, string]>, free: (n: number) => boolean = () => true): string[] | undefined => {
    const found = layout.firstUncoveredRun(size, covered.map(([a, b]) => [ip(a), ip(b)]), free);
    return found?.map((n) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`);
  };

  it('sizes blocks at about an eighth of the pool, 4 to 64 addresses', () => {
    expect([1, 13, 40, 252, 1021, 65533].map(blockSize)).toEqual([4, 4, 4, 16, 64, 64]);
  });

  it('claims the lowest run of addresses outside every block, over exclusions and around blocks', () => {
    // The network address and the gateway (.0, .1) are not handed out: the first run starts at .2.
    expect(run(4, [])).toEqual(['10.10.0.2', '10.10.0.5']);
    // The excluded .20 is stepped over: 16 addresses handed out from .6 end at .22.
    expect(run(16, [['10.10.0.2', '10.10.0.5']])).toEqual(['10.10.0.6', '10.10.0.22']);
    // A run ends where a block starts, even one covering nothing the pool hands out.
    expect(run(16, [['10.10.0.2', '10.10.0.5'], ['10.10.0.9', '10.10.0.30']])).toEqual(['10.10.0.6', '10.10.0.8']);
    expect(run(4, [['10.10.0.20', '10.10.0.20'], ['10.10.0.2', '10.10.0.18']].sort((a, b) => ip(a[0]) - ip(b[0])) as Array<[string, string]>)).toEqual(['10.10.0.19', '10.10.0.19']);
    // A run with nothing free is passed over; a full pool has none.
    expect(run(4, [], (n) => n > ip('10.10.0.5'))).toEqual(['10.10.0.6', '10.10.0.9']);
    expect(run(4, [['10.10.0.0', '10.10.0.255']])).toBeUndefined();
    expect(run(4, [], () => false)).toBeUndefined();
  });
});
