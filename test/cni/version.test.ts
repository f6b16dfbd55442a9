import { CniCode, CniError } from '../../src/cni/errors.js';
import { convertResult, parseResult } from '../../src/cni/result.js';
import type { CniResult } from '../../src/cni/types.js';
import { compareVersions, parseVersion, pickVersion, requireVersion, SUPPORTED_VERSIONS, versionAtLeast } from '../../src/cni/version.js';

function codeOf(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof CniError ? e.code : -1;
  }
  return undefined;
}

describe('CNI versions', () => {
  it('compares numerically, not lexically', () => {
    expect(compareVersions('0.3.1', '0.3.0')).toBe(1);
    expect(compareVersions('0.10.0', '0.4.0')).toBe(1);
    expect(compareVersions('1.0.0', '1.0.0')).toBe(0);
    expect(compareVersions('0.4.0', '1.0.0')).toBe(-1);
    expect(versionAtLeast('1.1.0', '0.4.0')).toBe(true);
    expect(versionAtLeast('0.3.1', '0.4.0')).toBe(false);
    expect(parseVersion('1.2.3')).toEqual([1, 2, 3]);
    expect(codeOf(() => parseVersion('1.0'))).toBe(CniCode.IncompatibleVersion);
  });

  it('picks the highest version offered that is supported (spec 1.1 cniVersions)', () => {
    expect(pickVersion('1.0.0', ['1.0.0', '1.1.0'])).toBe('1.1.0');
    expect(pickVersion('1.0.0', ['1.0.0', '1.1.0', '2.0.0'])).toBe('1.1.0');
    expect(pickVersion('1.0.0', ['1.1.0'], ['0.4.0', '1.0.0'])).toBe('1.0.0');
    expect(pickVersion(undefined, ['0.3.1', '0.4.0'])).toBe('0.4.0');
    expect(pickVersion('0.2.0', undefined)).toBeUndefined();
    expect(pickVersion(undefined, ['junk', '1.0.0'])).toBe('1.0.0');
  });

  it('refuses versions it cannot speak with code 1', () => {
    expect(codeOf(() => requireVersion('1.0.0'))).toBeUndefined();
    expect(codeOf(() => requireVersion('0.2.0'))).toBe(CniCode.IncompatibleVersion);
    expect(codeOf(() => requireVersion('9.9.9'))).toBe(CniCode.IncompatibleVersion);
    expect(codeOf(() => requireVersion('1.1.0', ['0.4.0', '1.0.0']))).toBe(CniCode.IncompatibleVersion);
  });
});

const full: CniResult = {
  cniVersion: '1.1.0',
  interfaces: [
    { name: 'br0', mac: '02:00:00:00:00:01' },
    { name: 'eth0', mac: '02:00:00:00:00:02', mtu: 1400, sandbox: '/var/run/netns/p', socketPath: '/run/vhost.sock', pciID: '0000:00:1f.0' },
  ],
  ips: [
    { address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 1 },
    { address: 'fd00::5/64', gateway: 'fd00::1', interface: 1 },
  ],
  routes: [
    { dst: '0.0.0.0/0', gw: '10.1.0.1', mtu: 1400, advmss: 1360, priority: 10, table: 100, scope: 0 },
    { dst: '::/0' },
  ],
  dns: { nameservers: ['10.1.0.53'], domain: 'cluster.local', search: ['svc.cluster.local'], options: ['ndots:5'] },
};

describe('result conversion', () => {
  it('adds ips[].version by address family below 1.0.0 and drops 1.1-only fields', () => {
    for (const v of ['0.3.0', '0.3.1', '0.4.0']) {
      const r = convertResult(full, v);
      expect(r.cniVersion).toBe(v);
      expect(r.ips).toEqual([
        { version: '4', address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 1 },
        { version: '6', address: 'fd00::5/64', gateway: 'fd00::1', interface: 1 },
      ]);
      expect(r.interfaces![1]).toEqual({ name: 'eth0', mac: '02:00:00:00:00:02', sandbox: '/var/run/netns/p' });
      expect(r.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.1.0.1' }, { dst: '::/0' }]);
      expect(r.dns).toEqual(full.dns);
    }
  });

  it('1.0.0 has no ips[].version and none of the 1.1 fields; 1.1.0 keeps them all', () => {
    const v100 = convertResult(full, '1.0.0');
    expect(v100.ips![0]).toEqual({ address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 1 });
    expect(v100.interfaces![1]!.mtu).toBeUndefined();
    expect(v100.routes![0]).toEqual({ dst: '0.0.0.0/0', gw: '10.1.0.1' });
    expect(convertResult(full, '1.1.0')).toEqual(full);
  });

  it('round-trips 0.4.0 → 1.1.0 → 0.3.1 without losing what both can carry', () => {
    const old = convertResult(full, '0.4.0');
    const up = convertResult(old, '1.1.0');
    expect(up.ips![0]!.version).toBeUndefined();
    expect(up.ips).toEqual(convertResult(full, '1.0.0').ips);
    expect(convertResult(up, '0.3.1')).toEqual({ ...old, cniVersion: '0.3.1' });
  });

  it('leaves out empty lists and DNS, and drops unknown keys', () => {
    const r = convertResult({ cniVersion: '1.0.0', interfaces: [], ips: [{ address: '10.0.0.1/8' }], dns: {}, extra: 1 } as CniResult, '0.4.0');
    expect(r).toEqual({ cniVersion: '0.4.0', ips: [{ version: '4', address: '10.0.0.1/8' }] });
  });

  it('refuses 0.1.0/0.2.0 (ip4/ip6 shape) in either direction with code 1', () => {
    expect(codeOf(() => convertResult({ cniVersion: '0.2.0' }, '1.0.0'))).toBe(CniCode.IncompatibleVersion);
    expect(codeOf(() => convertResult(full, '0.2.0'))).toBe(CniCode.IncompatibleVersion);
    expect(codeOf(() => convertResult(full, '0.1.0'))).toBe(CniCode.IncompatibleVersion);
  });

  it('parseResult validates before converting', () => {
    expect(parseResult(full, { toVersion: '0.4.0' }).ips![1]!.version).toBe('6');
    const bad = { cniVersion: '1.0.0', ips: [{ address: '10.1.0.300/24' }] };
    expect(() => parseResult(bad, { code: CniCode.DecodeFailure })).toThrow(/ips\[0\]\.address/);
    expect(codeOf(() => parseResult(bad, { code: CniCode.DecodeFailure }))).toBe(CniCode.DecodeFailure);
  });

  it('covers every pair of supported versions', () => {
    for (const from of SUPPORTED_VERSIONS) {
      const src = convertResult(full, from);
      for (const to of SUPPORTED_VERSIONS) {
        const r = convertResult(src, to);
        expect(r.cniVersion).toBe(to);
        expect(r.ips!.map((i) => i.address)).toEqual(['10.1.0.5/24', 'fd00::5/64']);
        expect(r.ips!.every((i) => (compareVersions(to, '1.0.0') < 0 ? i.version !== undefined : i.version === undefined))).toBe(true);
      }
    }
  });
});
