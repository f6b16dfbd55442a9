import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CniCode, CniError } from '../../../src/cni/errors.js';
import { IpamAddressError, IpamExhaustedError, IpamStateError, NodeIpam, PodCidr, type IpamOwner } from '../../../src/primary/ipam/index.js';
import { Scratch } from '../cniserver/scratch.js';

const owner = (n: number | string, ifname = 'eth0'): IpamOwner => ({ containerId: `ctr${n}`, ifname, podNamespace: 'default', podName: `pod-${n}` });

describe('PodCidr', () => {
  it('reserves network, gateway and (IPv4) broadcast', () => {
    const c = PodCidr.parse('10.244.1.0/24');
    expect(c.cidr).toBe('10.244.1.0/24');
    expect(c.gateway).toBe('10.244.1.1');
    expect(c.usable).toBe(253n);
    expect(c.addressAt(c.firstUsable)).toBe('10.244.1.2');
    expect(c.addressAt(c.lastUsable)).toBe('10.244.1.254');
    const v6 = PodCidr.parse('fd00:10:244:1::/64');
    expect(v6.gateway).toBe('fd00:10:244:1::1');
    expect(v6.addressAt(v6.lastUsable)).toBe('fd00:10:244:1:ffff:ffff:ffff:ffff');
  });

  it('refuses what is not a usable pod CIDR', () => {
    expect(() => PodCidr.parse('10.244.1.5/24')).toThrow(/host bits/);
    expect(() => PodCidr.parse('10.244.1.0/31')).toThrow(/too small/);
    expect(() => PodCidr.parse('10.244/16')).toThrow(/not an address/);
    expect(() => PodCidr.parse('10.244.1.0')).toThrow(/not an address/);
    expect(() => PodCidr.parse('10.244.1.0/33')).toThrow(/longer/);
  });
});

describe('NodeIpam', () => {
  let scratch: Scratch;
  let dir: string;
  beforeEach(async () => {
    scratch = await Scratch.create('ipam');
    // The ledger keeps its own file in its directory: the pool gets a clean one of its own.
    dir = scratch.path('state');
    mkdirSync(dir);
  });
  afterEach(() => scratch.close());

  const open = (podCIDR = '10.244.1.0/24', stateDir = dir) => NodeIpam.open({ podCIDR, stateDir });

  it('hands out the lowest free address first, with prefix and gateway', async () => {
    const ipam = await open();
    const a = await ipam.allocate(owner(1));
    expect(a).toMatchObject({ ip: '10.244.1.2', address: '10.244.1.2/24', gateway: '10.244.1.1', prefixLength: 24, family: 4, static: false, containerId: 'ctr1', podName: 'pod-1' });
    expect((await ipam.allocate(owner(2))).ip).toBe('10.244.1.3');
  });

  it('is idempotent: the same owner gets the same address; release twice is fine', async () => {
    const ipam = await open();
    const a = await ipam.allocate(owner(1));
    const again = await ipam.allocate(owner(1));
    expect(again.ip).toBe(a.ip);
    expect(ipam.size).toBe(1);
    // Another interface of the same container is another attachment.
    expect((await ipam.allocate(owner(1, 'net1'))).ip).not.toBe(a.ip);
    expect((await ipam.release('ctr1', 'eth0'))?.ip).toBe(a.ip);
    expect(await ipam.release('ctr1', 'eth0')).toBeUndefined();
    expect(await ipam.release('nobody', 'eth0')).toBeUndefined();
    expect(ipam.get('ctr1', 'eth0')).toBeUndefined();
  });

  it('never hands out network, gateway or broadcast, and exhaustion is a typed CNI error', async () => {
    const ipam = await open('10.9.0.0/29'); // .0 network, .1 gateway, .7 broadcast: .2-.6 usable
    const got = [];
    for (let i = 0; i < 5; i++) got.push((await ipam.allocate(owner(i))).ip);
    expect(got).toEqual(['10.9.0.2', '10.9.0.3', '10.9.0.4', '10.9.0.5', '10.9.0.6']);
    const e = await ipam.allocate(owner('x')).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(IpamExhaustedError);
    expect(e).toBeInstanceOf(CniError);
    expect((e as CniError).toJSON('1.1.0')).toEqual({ cniVersion: '1.1.0', code: CniCode.TryAgainLater, msg: 'no free IP address in pod CIDR 10.9.0.0/29', details: 'all 5 usable addresses are allocated' });
    // A failed allocation leaves no trace, and an existing owner still gets its address.
    expect(ipam.size).toBe(5);
    expect((await ipam.allocate(owner(3))).ip).toBe('10.9.0.5');
    for (const ip of ['10.9.0.0', '10.9.0.1', '10.9.0.7']) {
      await expect(ipam.reserve(ip, owner('s'))).rejects.toMatchObject({ problem: 'reserved', code: CniCode.InvalidNetworkConfig });
    }
  });

  it('never hands out reserved addresses over a whole /24 cycle, released ones included', async () => {
    const ipam = await open();
    const seen = new Set<string>();
    for (let i = 0; i < 600; i++) {
      const a = await ipam.allocate(owner(i));
      seen.add(a.ip);
      await ipam.release(a.containerId, a.ifname);
    }
    expect(seen.size).toBe(253);
    for (const ip of ['10.244.1.0', '10.244.1.1', '10.244.1.255']) expect(seen.has(ip)).toBe(false);
  });

  it('does not reuse a just-released address while others are free (round robin)', async () => {
    const ipam = await open('10.9.0.0/29');
    const a = await ipam.allocate(owner(1)); // .2
    await ipam.allocate(owner(2)); // .3
    await ipam.release(a.containerId, a.ifname);
    expect((await ipam.allocate(owner(3))).ip).toBe('10.9.0.4');
    expect((await ipam.allocate(owner(4))).ip).toBe('10.9.0.5');
    expect((await ipam.allocate(owner(5))).ip).toBe('10.9.0.6');
    // Wraps around to the lowest free one.
    expect((await ipam.allocate(owner(6))).ip).toBe('10.9.0.2');
  });

  it('200 concurrent allocations get 200 distinct addresses, and all are persisted', async () => {
    const ipam = await open();
    const all = await Promise.all(Array.from({ length: 200 }, (_, i) => ipam.allocate(owner(i))));
    expect(new Set(all.map((a) => a.ip)).size).toBe(200);
    // Concurrent repeats of the same owners are idempotent too.
    const again = await Promise.all(Array.from({ length: 200 }, (_, i) => ipam.allocate(owner(i))));
    expect(again.map((a) => a.ip)).toEqual(all.map((a) => a.ip));
    const reopened = await open();
    expect(reopened.allocations().map((a) => a.ip)).toEqual(ipam.allocations().map((a) => a.ip));
    expect(reopened.size).toBe(200);
  });

  it('survives a restart: allocations, static flags and the round-robin cursor', async () => {
    const first = await open();
    await first.allocate(owner(1));
    const b = await first.allocate(owner(2));
    await first.reserve('10.244.1.100', { ...owner(3), podUid: 'uid-3' });
    await first.release(b.containerId, b.ifname);
    const file = first.statePath;
    expect(file).toBe(join(dir, 'ipam-ipv4.json'));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['ipam-ipv4.json']);

    const second = await open();
    expect(second.allocations().map((a) => [a.ip, a.containerId, a.static])).toEqual([
      ['10.244.1.2', 'ctr1', false],
      ['10.244.1.100', 'ctr3', true],
    ]);
    expect(second.get('ctr3', 'eth0')?.podUid).toBe('uid-3');
    // .3 was released before the restart: still not reused at once.
    expect((await second.allocate(owner(4))).ip).toBe('10.244.1.4');
    expect(second.holderOf('10.244.1.4')?.containerId).toBe('ctr4');
  });

  it('reserve gives a requested address, idempotently, and refuses conflicts clearly', async () => {
    const ipam = await open();
    expect((await ipam.reserve('10.244.1.50', owner(1))).static).toBe(true);
    expect((await ipam.reserve('10.244.1.50', owner(1))).ip).toBe('10.244.1.50');
    const inUse = (await ipam.reserve('10.244.1.50', owner(2)).catch((x: unknown) => x)) as IpamAddressError;
    expect(inUse).toBeInstanceOf(IpamAddressError);
    expect(inUse.problem).toBe('in-use');
    expect(inUse.code).toBe(CniCode.TryAgainLater);
    expect(inUse.details).toContain('default/pod-1');
    await expect(ipam.reserve('10.244.1.51', owner(1))).rejects.toMatchObject({ problem: 'owner-has-other' });
    await expect(ipam.reserve('10.245.0.9', owner(3))).rejects.toMatchObject({ problem: 'outside', code: CniCode.InvalidNetworkConfig });
    await expect(ipam.reserve('10.244.1', owner(3))).rejects.toMatchObject({ problem: 'invalid' });
    // allocate() by that owner is idempotent with the reservation; the cursor did not move.
    expect((await ipam.allocate(owner(1))).ip).toBe('10.244.1.50');
    expect((await ipam.allocate(owner(4))).ip).toBe('10.244.1.2');
  });

  it('reconcile releases every allocation not in the valid set, and returns them', async () => {
    const ipam = await open();
    for (let i = 1; i <= 5; i++) await ipam.allocate(owner(i));
    await ipam.allocate(owner(2, 'net1'));
    const released = await ipam.reconcile([
      { containerId: 'ctr2', ifname: 'eth0' },
      { containerId: 'ctr4', ifname: 'eth0' },
      { containerId: 'gone', ifname: 'eth0' },
    ]);
    expect(released.map((a) => `${a.containerId}/${a.ifname}`).sort()).toEqual(['ctr1/eth0', 'ctr2/net1', 'ctr3/eth0', 'ctr5/eth0']);
    expect(ipam.allocations().map((a) => a.containerId)).toEqual(['ctr2', 'ctr4']);
    expect(await ipam.reconcile([{ containerId: 'ctr2', ifname: 'eth0' }, { containerId: 'ctr4', ifname: 'eth0' }])).toEqual([]);
    expect((await open()).allocations().map((a) => a.containerId)).toEqual(['ctr2', 'ctr4']);
  });

  it('a corrupt or foreign state file is an error naming the file, and is left in place', async () => {
    const path = join(dir, 'ipam-ipv4.json');
    writeFileSync(path, '{"kind":"seine-node-ipam","version":1,"cidr":"10.244.1.0/24","allocations":[{"ip":"10.244.1.2"');
    const e = await open().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(IpamStateError);
    expect((e as Error).message).toMatch(/ipam-ipv4\.json: not valid JSON/);
    expect(readFileSync(path, 'utf8')).toContain('10.244.1.2');

    const base = { kind: 'seine-node-ipam', version: 1, cidr: '10.244.1.0/24' };
    const a = { containerId: 'c1', ifname: 'eth0', podNamespace: 'ns', podName: 'p', static: false, allocatedAt: '2024-01-01T00:00:00.000Z' };
    const cases: Array<[unknown, RegExp]> = [
      [{ ...base, cidr: '10.244.2.0/24', allocations: [] }, /records pod CIDR "10.244.2.0\/24", but the node's is 10.244.1.0\/24/],
      [{ ...base, version: 7, allocations: [] }, /unsupported version 7/],
      [[], /not a seine-node-ipam state file/],
      [{ ...base, allocations: [{ ...a, ip: '10.244.1.1' }] }, /allocations\[0\]: "10.244.1.1" is not a usable address/],
      [{ ...base, allocations: [{ ...a, ip: '10.244.1.2' }, { ...a, containerId: 'c2', ip: '10.244.1.2' }] }, /allocations\[1\]: 10.244.1.2 is allocated twice/],
      [{ ...base, allocations: [{ ...a, ip: '10.244.1.2' }, { ...a, ip: '10.244.1.3' }] }, /c1\/eth0 holds two addresses/],
      [{ ...base, allocations: [{ ...a, containerId: '', ip: '10.244.1.2' }] }, /containerId missing/],
    ];
    for (const [content, re] of cases) {
      writeFileSync(path, JSON.stringify(content));
      await expect(open()).rejects.toThrow(re);
    }
    rmSync(path);
    mkdirSync(path);
    await expect(open()).rejects.toThrow(/ipam-ipv4\.json: cannot be read: EISDIR/);
  });

  it('removes temp files a crashed writer left, but nothing else', async () => {
    writeFileSync(join(dir, 'ipam-ipv4.json.tmp-123-abcd'), '{"half');
    writeFileSync(join(dir, 'other.json'), '{}');
    const ipam = await open();
    await ipam.allocate(owner(1));
    expect(readdirSync(dir).sort()).toEqual(['ipam-ipv4.json', 'other.json']);
  });

  it('a failed write is reported and leaves memory as it was', async () => {
    const stateDir = join(dir, 'state');
    const ipam = await open('10.244.1.0/24', stateDir);
    await ipam.allocate(owner(1));
    rmSync(stateDir, { recursive: true });
    await expect(ipam.allocate(owner(2))).rejects.toThrow(/ENOENT/);
    expect(ipam.allocations().map((a) => a.containerId)).toEqual(['ctr1']);
    await expect(ipam.release('ctr1', 'eth0')).rejects.toThrow(/ENOENT/);
    expect(ipam.get('ctr1', 'eth0')).toBeDefined();
  });

  it('works for an IPv6 pod CIDR (own state file)', async () => {
    const ipam = await open('fd00:10:244:1::/64');
    const a = await ipam.allocate(owner(1));
    expect(a).toMatchObject({ ip: 'fd00:10:244:1::2', address: 'fd00:10:244:1::2/64', gateway: 'fd00:10:244:1::1', family: 6 });
    expect((await ipam.reserve('FD00:10:244:1:0:0:0:ff', owner(2))).ip).toBe('fd00:10:244:1::ff');
    expect(ipam.statePath).toBe(join(dir, 'ipam-ipv6.json'));
    expect((await open('fd00:10:244:1::/64')).allocations()).toHaveLength(2);
  });

  it('refuses an owner without container id or ifname', async () => {
    const ipam = await open();
    await expect(ipam.allocate({ ...owner(1), containerId: '' })).rejects.toThrow(RangeError);
    await expect(ipam.reserve('10.244.1.9', { ...owner(1), ifname: '' })).rejects.toThrow(/ifname/);
    expect(ipam.size).toBe(0);
  });
});
