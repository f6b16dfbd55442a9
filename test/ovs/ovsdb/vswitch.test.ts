import {
  BridgeNotFoundError,
  CacheWaitTimeoutError,
  InterfaceOpenError,
  InvalidInterfaceTypeError,
  InvalidPortSpecError,
  OvsdbConstraintViolationError,
  RowNotFoundError,
} from '../../../src/ovs/ovsdb/errors.js';
import { Vswitch, type InterfaceType } from '../../../src/ovs/ovsdb/vswitch.js';
import type { VswitchChange } from '../../../src/ovs/ovsdb/vswitch-cache.js';
import { OvsSandbox } from '../../harness/sandbox.js';
import { rejection, unquote } from './helpers.js';

describe('Vswitch helpers against real ovsdb-server + ovs-vswitchd', () => {
  let sb: OvsSandbox;
  let vs: Vswitch;
  const vsctl = (...args: string[]): Promise<string> => sb.ovs.vsctl(args);
  const get = async (...args: string[]): Promise<string> => unquote(await vsctl('get', ...args));
  const listPorts = async (br: string): Promise<string[]> => (await vsctl('list-ports', br)).split('\n').filter(Boolean);
  const interfaceNames = async (): Promise<string[]> => (await vsctl('--bare', '--columns=name', 'list', 'Interface')).split(/\s+/).filter(Boolean);

  beforeAll(async () => {
    sb = await OvsSandbox.start();
    vs = await Vswitch.connect({ remote: sb.ovs.dbRemote });
  });
  afterAll(async () => {
    await vs?.close();
    await sb?.close();
  });

  it('ensureBridge creates a bridge and converges an existing one idempotently', async () => {
    const br = await vs.ensureBridge('br-int', {
      datapathType: 'netdev',
      protocols: ['OpenFlow10', 'OpenFlow13', 'OpenFlow15'],
      failMode: 'secure',
      externalIds: { owner: 'seine', role: 'primary' },
      otherConfig: { 'disable-in-band': 'true' },
    });
    expect(br.name).toBe('br-int');
    expect(await get('Bridge', 'br-int', 'datapath_type')).toBe('netdev');
    expect(await get('Bridge', 'br-int', 'protocols')).toBe('[OpenFlow10, OpenFlow13, OpenFlow15]');
    expect(await get('Bridge', 'br-int', 'fail_mode')).toBe('secure');
    expect(await get('Bridge', 'br-int', 'external_ids:role')).toBe('primary');
    expect(await get('Bridge', 'br-int', 'other_config:disable-in-band')).toBe('true');
    // Its local port exists and vswitchd brought it up.
    expect(await get('Interface', 'br-int', 'type')).toBe('internal');
    const local = await vs.waitForOfport('br-int', 20_000);
    expect(local.ofport).toBe(65534);

    // Someone else changes things; ensureBridge converges its own settings and keeps foreign keys.
    await vsctl('set', 'Bridge', 'br-int', 'fail_mode=standalone', 'protocols=OpenFlow10', 'external_ids:role=other', 'external_ids:foreign=kept');
    const again = await vs.ensureBridge('br-int', {
      datapathType: 'netdev',
      protocols: ['OpenFlow13', 'OpenFlow15'],
      failMode: 'secure',
      externalIds: { owner: 'seine', role: 'primary' },
    });
    expect(again.uuid).toBe(br.uuid);
    expect(await get('Bridge', 'br-int', 'protocols')).toBe('[OpenFlow13, OpenFlow15]');
    expect(await get('Bridge', 'br-int', 'fail_mode')).toBe('secure');
    expect(await get('Bridge', 'br-int', 'external_ids:role')).toBe('primary');
    expect(await get('Bridge', 'br-int', 'external_ids:foreign')).toBe('kept');
    expect(again).toMatchObject({ protocols: ['OpenFlow13', 'OpenFlow15'], failMode: 'secure', datapathType: 'netdev' });
    expect((await vsctl('list-br')).split('\n').filter(Boolean)).toEqual(['br-int']);

    // Concurrent ensures of a new bridge: exactly one is created, all succeed.
    const results = await Promise.all([1, 2, 3].map(() => vs.ensureBridge('br-ex', { datapathType: 'netdev', failMode: 'secure' })));
    expect(new Set(results.map((r) => r.uuid)).size).toBe(1);
    expect((await vsctl('list-br')).split('\n').filter(Boolean).sort()).toEqual(['br-ex', 'br-int']);
    expect(await vs.deleteBridge('br-ex')).toBe(true);
    expect(await vs.deleteBridge('br-ex')).toBe(false);
    expect((await vsctl('list-br')).split('\n').filter(Boolean)).toEqual(['br-int']);
    expect(await interfaceNames()).not.toContain('br-ex');
  });

  it('adds a veth (system) port with VLAN tag and external_ids, and vswitchd assigns its ofport', async () => {
    const pod = await sb.addPod('10.20.0.2/24');
    const added = await vs.addPort('br-int', {
      name: pod.hostIf,
      tag: 100,
      externalIds: { 'pod-name': 'web-1', 'pod-namespace': 'default' },
      interfaceExternalIds: { 'attached-mac': pod.mac },
    });
    expect(added.ofport).toBeGreaterThan(0);
    expect(await get('Interface', pod.hostIf, 'ofport')).toBe(String(added.ofport));
    expect(await get('Port', pod.hostIf, 'tag')).toBe('100');
    expect(await get('Port', pod.hostIf, 'external_ids:pod-name')).toBe('web-1');
    expect(await get('Interface', pod.hostIf, 'external_ids:attached-mac')).toBe(pod.mac);
    expect(await get('Interface', pod.hostIf, 'type')).toBe('');
    expect(added.port).toMatchObject({ name: pod.hostIf, tag: 100, externalIds: { 'pod-name': 'web-1', 'pod-namespace': 'default' } });
    expect(vs.cache.bridgeOf(pod.hostIf)?.name).toBe('br-int');
    expect(vs.cache.interfacesOf(pod.hostIf).map((i) => i.ofport)).toEqual([added.ofport]);

    expect(vs.findPorts({ 'pod-name': 'web-1' }).map((p) => p.name)).toEqual([pod.hostIf]);
    expect(vs.findPorts({ 'pod-name': 'web-1', 'pod-namespace': 'other' })).toEqual([]);

    await vs.setPortExternalIds(pod.hostIf, { 'pod-namespace': 'prod', sandbox: 'abc' }, ['pod-name']);
    expect(await get('Port', pod.hostIf, 'external_ids')).toBe('{pod-namespace=prod, sandbox=abc}');
    await vs.setInterfaceExternalIds(pod.hostIf, { 'iface-id': 'x1' });
    expect(await get('Interface', pod.hostIf, 'external_ids')).toBe(`{attached-mac="${pod.mac}", iface-id=x1}`);
    // The cache followed (own transactions are visible once they return).
    expect(vs.cache.port(pod.hostIf)?.externalIds).toEqual({ 'pod-namespace': 'prod', sandbox: 'abc' });
    expect(vs.findPorts({ sandbox: 'abc' }).map((p) => p.name)).toEqual([pod.hostIf]);
    expect(await rejection(vs.setPortExternalIds('no-such-port', { a: 'b' }))).toBeInstanceOf(RowNotFoundError);

    expect(await vs.removePort(pod.hostIf)).toBe(true);
    expect(await vs.removePort(pod.hostIf)).toBe(false);
    expect(await listPorts('br-int')).not.toContain(pod.hostIf);
    expect(await interfaceNames()).not.toContain(pod.hostIf);
    expect(vs.cache.port(pod.hostIf)).toBeUndefined();
  });

  it('adds internal, vxlan/geneve (flow-based) and patch ports, trunks and vlan_mode', async () => {
    await vs.ensureBridge('br-tun', { datapathType: 'netdev', protocols: ['OpenFlow13', 'OpenFlow15'], failMode: 'secure' });
    const internal = await vs.addPort('br-int', { name: 'gw0', type: 'internal', mac: '02:00:00:00:00:fe', mtuRequest: 1450 });
    expect(internal.ofport).toBeGreaterThan(0);
    expect(await get('Interface', 'gw0', 'mac_in_use')).toBe('02:00:00:00:00:fe');

    const vxlan = await vs.addPort('br-tun', { name: 'vxlan0', type: 'vxlan', tunnel: { remoteIp: 'flow', key: 'flow', dstPort: 4790 }, ofportRequest: 10 });
    expect(vxlan.ofport).toBe(10);
    expect(await get('Interface', 'vxlan0', 'options')).toBe('{dst_port="4790", key=flow, remote_ip=flow}');
    const geneve = await vs.addPort('br-tun', { name: 'genev0', type: 'geneve', tunnel: { remoteIp: 'flow', key: 'flow' } });
    expect(geneve.ofport).toBeGreaterThan(0);
    expect(geneve.iface).toMatchObject({ type: 'geneve', options: { remote_ip: 'flow', key: 'flow' } });

    // Patch ports come up once both ends exist.
    const [a, b] = await Promise.all([
      vs.addPort('br-int', { name: 'patch-int', type: 'patch', peer: 'patch-tun' }),
      vs.addPort('br-tun', { name: 'patch-tun', type: 'patch', peer: 'patch-int' }),
    ]);
    expect(a.ofport).toBeGreaterThan(0);
    expect(b.ofport).toBeGreaterThan(0);
    expect(await get('Interface', 'patch-int', 'options:peer')).toBe('patch-tun');

    const trunk = await vs.addPort('br-int', { name: 'trunk0', type: 'internal', trunks: [10, 20], vlanMode: 'trunk' });
    expect(trunk.port).toMatchObject({ trunks: expect.arrayContaining([10, 20]), vlanMode: 'trunk' });
    expect(await get('Port', 'trunk0', 'trunks')).toBe('[10, 20]');
    expect(await get('Port', 'trunk0', 'vlan_mode')).toBe('trunk');

    expect(vs.cache.portsOf('br-tun').map((p) => p.name).sort()).toEqual(['br-tun', 'genev0', 'patch-tun', 'vxlan0']);
    expect((await listPorts('br-tun')).sort()).toEqual(['genev0', 'patch-tun', 'vxlan0']);
    for (const p of ['gw0', 'vxlan0', 'genev0', 'patch-int', 'patch-tun', 'trunk0']) expect(await vs.removePort(p)).toBe(true);
    expect(await vs.deleteBridge('br-tun')).toBe(true);
  });

  it('rejects a duplicate port name with a typed constraint error and leaves the first intact', async () => {
    const first = await vs.addPort('br-int', { name: 'dup0', type: 'internal' });
    const err = await rejection(vs.addPort('br-int', { name: 'dup0', type: 'internal' }));
    expect(err).toBeInstanceOf(OvsdbConstraintViolationError);
    expect((err as OvsdbConstraintViolationError).commitFailed).toBe(true);
    expect((err as OvsdbConstraintViolationError).details).toMatch(/dup0/);
    expect((await listPorts('br-int')).filter((p) => p === 'dup0')).toHaveLength(1);
    expect(await get('Port', 'dup0', '_uuid')).toBe(first.port.uuid);
    expect(await vs.removePort('dup0')).toBe(true);
  });

  it('validates before sending: unknown interface type, bad specs, missing bridge', async () => {
    const sentBefore = vs.client.stats.requestsSent;
    const err = await rejection(vs.addPort('br-int', { name: 'bad0', type: 'bogus' as InterfaceType }));
    expect(err).toBeInstanceOf(InvalidInterfaceTypeError);
    expect((err as InvalidInterfaceTypeError).interfaceType).toBe('bogus');
    await expect(vs.addPort('br-int', { name: 'p1', type: 'patch' })).rejects.toBeInstanceOf(InvalidPortSpecError);
    await expect(vs.addPort('br-int', { name: 'v1', type: 'vxlan' })).rejects.toThrow(/needs remote_ip/);
    await expect(vs.addPort('br-int', { name: 't1', type: 'internal', tag: 4096 })).rejects.toThrow(/VLAN tag/);
    await expect(vs.addPort('br-int', { name: 'a-name-longer-than-15', type: 'internal' })).rejects.toThrow(/15 bytes/);
    await expect(vs.addPort('br-int', { name: 'i1', type: 'internal', tunnel: { remoteIp: '1.2.3.4' } })).rejects.toThrow(/tunnel type/);
    expect(vs.client.stats.requestsSent).toBe(sentBefore);
    expect(await interfaceNames()).not.toContain('bad0');
    expect(vs.cache.iface('bad0')).toBeUndefined();

    await expect(vs.addPort('no-such-br', { name: 'x0', type: 'internal' })).rejects.toBeInstanceOf(BridgeNotFoundError);
    expect(await interfaceNames()).not.toContain('x0');
  });

  it('surfaces the Interface error when vswitchd cannot open the device, and removes the port', async () => {
    const err = await rejection(vs.addPort('br-int', { name: 'nodev0', type: 'system' }, { timeoutMs: 20_000 }));
    expect(err).toBeInstanceOf(InterfaceOpenError);
    expect((err as InterfaceOpenError).iface).toBe('nodev0');
    expect((err as InterfaceOpenError).interfaceError).toMatch(/nodev0/);
    expect((err as InterfaceOpenError).interfaceError).toMatch(/No such device|could not open/);
    expect(await listPorts('br-int')).not.toContain('nodev0');
    expect(await interfaceNames()).not.toContain('nodev0');
    expect(vs.cache.port('nodev0')).toBeUndefined();
    expect(vs.cache.iface('nodev0')).toBeUndefined();
  });

  it('inserts 100 ports concurrently, each its own transaction, none lost', async () => {
    const names = Array.from({ length: 100 }, (_, i) => `c${i}`);
    const added = await Promise.all(
      names.map((name, i) => vs.addPort('br-int', { name, type: 'internal', externalIds: { batch: 'b100', index: String(i) } }, { timeoutMs: 60_000 })),
    );
    expect(new Set(added.map((a) => a.ofport)).size).toBe(100);
    const inCache = vs.findPorts({ batch: 'b100' }).map((p) => p.name);
    expect(inCache.sort()).toEqual([...names].sort());
    expect(vs.cache.portsOf('br-int').filter((p) => p.externalIds.batch === 'b100')).toHaveLength(100);
    const listed = await listPorts('br-int');
    for (const name of names) expect(listed).toContain(name);
    // ofports read back from OVS match what the client reported.
    const ofports = await vsctl('--bare', '--columns=name,ofport', 'find', 'Interface', 'name=c42');
    expect(ofports.split(/\s+/).filter(Boolean)).toEqual(['c42', String(added[42]!.ofport)]);

    const removed = await Promise.all(names.map((n) => vs.removePort(n)));
    expect(removed.every(Boolean)).toBe(true);
    expect(vs.findPorts({ batch: 'b100' })).toEqual([]);
    expect((await listPorts('br-int')).filter((p) => /^c\d+$/.test(p))).toEqual([]);
  }, 120_000);

  it('emits typed change events and resolves waiters for changes made by others', async () => {
    const seen: VswitchChange[] = [];
    const unsubscribe = vs.cache.onChange((changes) => seen.push(...changes));
    const waiter = vs.cache.waitForInterface('ext0', (i) => (i.ofport ?? 0) > 0, { timeoutMs: 20_000 });
    await vsctl('add-port', 'br-int', 'ext0', '--', 'set', 'Interface', 'ext0', 'type=internal', '--', 'set', 'Port', 'ext0', 'external_ids:by=vsctl');
    const iface = await waiter;
    expect(String(iface.ofport)).toBe(await get('Interface', 'ext0', 'ofport'));
    expect(seen).toContainEqual(expect.objectContaining({ table: 'Port', kind: 'insert', row: expect.objectContaining({ name: 'ext0', externalIds: { by: 'vsctl' } }) }));
    expect(seen).toContainEqual(expect.objectContaining({ table: 'Bridge', kind: 'modify', row: expect.objectContaining({ name: 'br-int' }) }));
    await vsctl('del-port', 'br-int', 'ext0');
    await vs.cache.waitUntil((c) => (c.port('ext0') ? undefined : true), { timeoutMs: 5000 });
    expect(seen).toContainEqual(expect.objectContaining({ table: 'Port', kind: 'delete', old: expect.objectContaining({ name: 'ext0' }) }));
    unsubscribe();
    await expect(vs.cache.waitForPort('never0', undefined, { timeoutMs: 100 })).rejects.toBeInstanceOf(CacheWaitTimeoutError);
  });

  it('sets and removes Open_vSwitch other_config keys', async () => {
    await vs.setOpenVSwitchOtherConfig({ 'flow-restore-wait': 'true', 'seine-test': '1' });
    expect(await get('Open_vSwitch', '.', 'other_config:flow-restore-wait')).toBe('true');
    expect(vs.cache.openVSwitch()?.otherConfig).toMatchObject({ 'flow-restore-wait': 'true', 'seine-test': '1' });
    await vs.setOpenVSwitchOtherConfig({}, ['flow-restore-wait', 'seine-test']);
    const other = await get('Open_vSwitch', '.', 'other_config');
    expect(other).not.toMatch(/flow-restore-wait|seine-test/);
    expect(vs.cache.openVSwitch()?.otherConfig['flow-restore-wait']).toBeUndefined();
  });
});
