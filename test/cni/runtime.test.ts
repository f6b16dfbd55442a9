import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cachedConfig } from '../../src/cni/cache.js';
import { parseConfList } from '../../src/cni/conf.js';
import { CniCode, CniError } from '../../src/cni/errors.js';
import { PluginError } from '../../src/cni/invoke.js';
import { CniRuntime, NetworkError, pluginConfig, type RuntimeConf } from '../../src/cni/runtime.js';
import type { NetConfList } from '../../src/cni/types.js';
import { readLog, recorderPlugin, removeDir, tempDir, type Logged } from './helpers.js';

describe('CniRuntime (scripted plugins)', () => {
  let dir: string;
  let n = 0;
  /** A fresh log, cache and runtime per test. */
  const setup = () => {
    const id = ++n;
    const log = join(dir, `calls${id}.log`);
    const runtime = new CniRuntime({ cniPath: [dir], cacheDir: join(dir, `cache${id}`), timeoutMs: 20_000 });
    const list = (over: Partial<NetConfList> = {}, behaviors: Array<Record<string, string>> = []) =>
      parseConfList({
        cniVersion: '1.0.0',
        name: 'testnet',
        plugins: ['a', 'b', 'c'].map((tag, i) => ({ type: i === 1 ? 'rec-b' : 'rec', tag, log, behavior: behaviors[i] ?? {}, ...(i === 2 ? { capabilities: { portMappings: true, mac: false } } : {}) })),
        ...over,
      });
    const calls = () => readLog(log);
    return { log, runtime, list, calls };
  };
  const rt: RuntimeConf = {
    containerId: 'ctr1',
    netns: '/var/run/netns/fake',
    ifname: 'eth0',
    args: { K8S_POD_NAMESPACE: 'default', K8S_POD_NAME: 'web-0' },
    capabilityArgs: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }], mac: '02:00:00:00:00:09', bandwidth: {} },
  };
  const tags = (calls: Logged[]) => calls.map((c) => `${c.cmd}:${c.conf.tag}`);

  beforeAll(() => {
    dir = tempDir();
    recorderPlugin(dir, 'rec');
    recorderPlugin(dir, 'rec-b');
    recorderPlugin(dir, 'rec-old', ['0.3.1', '0.4.0', '1.0.0']);
  });
  afterAll(() => removeDir(dir));

  it('ADD runs the plugins in order, chaining results and injecting name, version and runtimeConfig', async () => {
    const { runtime, list, calls } = setup();
    const result = await runtime.addNetworkList(list(), rt);
    expect(result.interfaces!.map((i) => i.name)).toEqual(['a', 'b', 'c']);
    const c = calls();
    expect(tags(c)).toEqual(['ADD:a', 'ADD:b', 'ADD:c']);
    expect(c.every((x) => x.conf.name === 'testnet' && x.conf.cniVersion === '1.0.0')).toBe(true);
    expect(c[0]!.conf.prevResult).toBeUndefined();
    expect((c[1]!.conf.prevResult as { interfaces: unknown[] }).interfaces).toHaveLength(1);
    expect((c[2]!.conf.prevResult as { interfaces: unknown[] }).interfaces).toHaveLength(2);
    // Only capabilities the plugin declares true, and only those the runtime supplies.
    expect(c[0]!.conf.runtimeConfig).toBeUndefined();
    expect(c[2]!.conf.runtimeConfig).toEqual({ portMappings: rt.capabilityArgs!.portMappings });
    expect(c[0]!.env.CNI_ARGS).toBe('IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0');
  });

  it('caches the result as libcni does (cniCacheV1) and reads it back', async () => {
    const { runtime, list } = setup();
    const l = list();
    const result = await runtime.addNetworkList(l, rt);
    const file = join(runtime.cache.resultsDir, 'testnet-ctr1-eth0');
    const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    expect(raw).toMatchObject({ kind: 'cniCacheV1', containerId: 'ctr1', ifName: 'eth0', networkName: 'testnet', netns: '/var/run/netns/fake', result });
    expect(raw.cniArgs).toEqual([
      ['IgnoreUnknown', '1'],
      ['K8S_POD_NAMESPACE', 'default'],
      ['K8S_POD_NAME', 'web-0'],
    ]);
    expect(cachedConfig(raw as never)).toEqual(l);
    expect(await runtime.cachedResult(l, rt)).toEqual(result);
    expect((await runtime.cachedResult({ ...l, cniVersion: '0.4.0' }, rt))!.ips![0]!.version).toBe('4');
    expect((await runtime.cachedAttachments('ctr1')).map((a) => a.networkName)).toEqual(['testnet']);
    expect(await runtime.cachedAttachments('other')).toEqual([]);
  });

  it('DEL runs in reverse with the cached result, and with the cached args when none are given', async () => {
    const { runtime, list, calls } = setup();
    const l = list();
    const result = await runtime.addNetworkList(l, rt);
    await runtime.delNetworkList(l, { containerId: 'ctr1', ifname: 'eth0' });
    const dels = calls().filter((c) => c.cmd === 'DEL');
    expect(tags(dels)).toEqual(['DEL:c', 'DEL:b', 'DEL:a']);
    expect(dels.every((d) => JSON.stringify(d.conf.prevResult) === JSON.stringify(result))).toBe(true);
    expect(dels[0]!.env.CNI_NETNS).toBe('/var/run/netns/fake');
    expect(dels[0]!.env.CNI_ARGS).toBe('IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0');
    expect(dels[0]!.conf.runtimeConfig).toEqual({ portMappings: rt.capabilityArgs!.portMappings });
    expect(existsSync(runtime.cache.path({ network: 'testnet', containerId: 'ctr1', ifname: 'eth0' }))).toBe(false);
  });

  it('DEL without a cached ADD still calls every plugin, without prevResult; a second DEL is fine', async () => {
    const { runtime, list, calls } = setup();
    await runtime.delNetworkList(list(), { containerId: 'never-added', ifname: 'eth0' });
    await runtime.delNetworkList(list(), { containerId: 'never-added', ifname: 'eth0' });
    const c = calls();
    expect(tags(c)).toEqual(['DEL:c', 'DEL:b', 'DEL:a', 'DEL:c', 'DEL:b', 'DEL:a']);
    expect(c.every((x) => x.conf.prevResult === undefined && x.env.CNI_NETNS === undefined)).toBe(true);
  });

  it('a corrupt cache entry is dropped and DEL goes on without prevResult', async () => {
    const { runtime, list, calls } = setup();
    await runtime.addNetworkList(list(), rt);
    writeFileSync(runtime.cache.path({ network: 'testnet', containerId: 'ctr1', ifname: 'eth0' }), '{not json');
    await runtime.delNetworkList(list(), rt);
    expect(calls().filter((c) => c.cmd === 'DEL').every((c) => c.conf.prevResult === undefined)).toBe(true);
    expect(await runtime.cachedAttachments()).toEqual([]);
  });

  it('a failing DEL stops there and keeps the cache entry for a retry', async () => {
    const { runtime, list, calls } = setup();
    const l = list({}, [{}, { DEL: 'fail' }]);
    await runtime.addNetworkList(l, rt);
    const e = (await runtime.delNetworkList(l, rt).catch((x: unknown) => x)) as NetworkError;
    expect(e).toBeInstanceOf(NetworkError);
    expect(e.message).toBe('network "testnet" DEL failed: plugin type="rec-b" failed (del): b DEL refused: on purpose (code 111)');
    expect(e.pluginError?.plugin).toBe('rec-b');
    expect(e.toCniError().code).toBe(111);
    expect(tags(calls().filter((c) => c.cmd === 'DEL'))).toEqual(['DEL:c', 'DEL:b']);
    expect(await runtime.cachedResult(l, rt)).toBeDefined();
  });

  it('a failed ADD in the middle is followed by a DEL of the whole list (best effort), leaving no cache', async () => {
    const { runtime, list, calls } = setup();
    const l = list({}, [{ DEL: 'fail' }, { ADD: 'fail' }]);
    const e = (await runtime.addNetworkList(l, rt).catch((x: unknown) => x)) as NetworkError;
    expect(e).toBeInstanceOf(NetworkError);
    expect(e.operation).toBe('ADD');
    expect(e.pluginError).toBeInstanceOf(PluginError);
    expect(e.pluginError!.cniError!.msg).toBe('b ADD refused');
    expect(e.cleanup!.ran).toBe(true);
    expect(e.cleanup!.errors.map((x) => x.message)).toEqual(['plugin type="rec" failed (del): a DEL refused: on purpose (code 111)']);
    expect(e.message).toMatch(/^network "testnet" ADD failed: plugin type="rec-b" failed \(add\): b ADD refused.*; clean-up DEL failed: /);
    // DEL went to every plugin, in reverse, past the failing one, without prevResult (nothing was cached).
    expect(tags(calls())).toEqual(['ADD:a', 'ADD:b', 'DEL:c', 'DEL:b', 'DEL:a']);
    expect(calls().filter((c) => c.cmd === 'DEL').every((c) => c.conf.prevResult === undefined)).toBe(true);
    expect(await runtime.cachedAttachments()).toEqual([]);
  });

  it("onFailure 'leave' returns at once, as libcni itself does", async () => {
    const { runtime, list, calls } = setup();
    const e = (await runtime.addNetworkList(list({}, [{}, { ADD: 'garbage' }]), rt, { onFailure: 'leave' }).catch((x: unknown) => x)) as NetworkError;
    expect(e.cleanup).toBeUndefined();
    expect(e.pluginError!.kind).toBe('bad-output');
    expect(tags(calls())).toEqual(['ADD:a', 'ADD:b']);
  });

  it('a plugin missing from CNI_PATH fails ADD clearly', async () => {
    const { runtime } = setup();
    const l = parseConfList({ cniVersion: '1.0.0', name: 'testnet', plugins: [{ type: 'rec' }, { type: 'macvlan-nope' }] });
    const e = (await runtime.addNetworkList(l, rt).catch((x: unknown) => x)) as NetworkError;
    expect(e.pluginError!.kind).toBe('not-found');
    expect(e.message).toContain(`plugin type="macvlan-nope" failed (add): no executable "macvlan-nope" in CNI_PATH [${dir}]`);
  });

  it('CHECK runs in order with the cached result; disableCheck skips it; it needs 0.4.0+ and an ADD', async () => {
    const { runtime, list, calls } = setup();
    const l = list();
    const result = await runtime.addNetworkList(l, rt);
    await runtime.checkNetworkList(l, rt);
    const checks = calls().filter((c) => c.cmd === 'CHECK');
    expect(tags(checks)).toEqual(['CHECK:a', 'CHECK:b', 'CHECK:c']);
    expect(checks.every((c) => JSON.stringify(c.conf.prevResult) === JSON.stringify(result))).toBe(true);

    await runtime.checkNetworkList(list({ disableCheck: true }), rt);
    expect(calls().filter((c) => c.cmd === 'CHECK')).toHaveLength(3);

    const old = await runtime.checkNetworkList({ ...l, cniVersion: '0.3.1' }, rt).catch((x: unknown) => x);
    expect(old).toBeInstanceOf(CniError);
    expect((old as CniError).code).toBe(CniCode.IncompatibleVersion);

    const none = (await runtime.checkNetworkList(l, { ...rt, containerId: 'nope' }).catch((x: unknown) => x)) as NetworkError;
    expect(none.toCniError().code).toBe(CniCode.UnknownContainer);

    const failing = (await runtime.checkNetworkList(list({}, [{}, {}, { CHECK: 'crash' }]), rt).catch((x: unknown) => x)) as NetworkError;
    expect(failing.pluginError!.kind).toBe('crashed');
  });

  it('GC deletes stale cached attachments, then sends GC with the valid ones (1.1.0)', async () => {
    const { runtime, list, calls } = setup();
    const l = list({ cniVersion: '1.1.0' });
    for (const id of ['keep', 'stale1', 'stale2']) await runtime.addNetworkList(l, { ...rt, containerId: id });
    const other = parseConfList({ cniVersion: '1.1.0', name: 'othernet', plugins: [{ type: 'rec', log: join(dir, 'other.log') }] });
    await runtime.addNetworkList(other, { ...rt, containerId: 'stale1' });

    await runtime.gcNetworkList(l, [{ containerID: 'keep', ifname: 'eth0' }]);
    const dels = calls().filter((c) => c.cmd === 'DEL');
    expect(dels.map((d) => `${d.env.CNI_CONTAINERID}:${d.conf.tag}`)).toEqual(['stale1:c', 'stale1:b', 'stale1:a', 'stale2:c', 'stale2:b', 'stale2:a']);
    expect(dels[0]!.env.CNI_ARGS).toContain('K8S_POD_NAME=web-0');
    const gcs = calls().filter((c) => c.cmd === 'GC');
    expect(tags(gcs)).toEqual(['GC:a', 'GC:b', 'GC:c']);
    expect(gcs[0]!.conf['cni.dev/valid-attachments']).toEqual([{ containerID: 'keep', ifname: 'eth0' }]);
    expect(gcs[0]!.env).toEqual({ CNI_COMMAND: 'GC', CNI_PATH: dir });
    // Other networks' attachments are not touched.
    expect((await runtime.cachedAttachments()).map((a) => `${a.networkName}/${a.containerId}`)).toEqual(['othernet/stale1', 'testnet/keep']);
  });

  it('GC before 1.1.0 only deletes stale attachments; disableGC does nothing; failures are collected', async () => {
    const { runtime, list, calls } = setup();
    await runtime.addNetworkList(list(), rt);
    await runtime.gcNetworkList(list({ disableGC: true }), []);
    expect(calls().filter((c) => c.cmd !== 'ADD')).toEqual([]);
    await runtime.gcNetworkList(list(), []);
    expect(calls().filter((c) => c.cmd === 'GC')).toEqual([]);
    expect(tags(calls().filter((c) => c.cmd === 'DEL'))).toEqual(['DEL:c', 'DEL:b', 'DEL:a']);

    const l11 = list({ cniVersion: '1.1.0' }, [{ GC: 'fail' }, {}, { GC: 'crash' }]);
    const e = (await runtime.gcNetworkList(l11, []).catch((x: unknown) => x)) as NetworkError;
    expect(e.errors.map((x) => (x as PluginError).kind)).toEqual(['plugin-error', 'crashed']);
  });

  it('STATUS asks each plugin on 1.1.0 lists; earlier lists count as ready', async () => {
    const { runtime, list, calls } = setup();
    await runtime.statusNetworkList(list());
    expect(calls()).toEqual([]);
    await runtime.statusNetworkList(list({ cniVersion: '1.1.0' }));
    expect(tags(calls())).toEqual(['STATUS:a', 'STATUS:b', 'STATUS:c']);
    const e = (await runtime.statusNetworkList(list({ cniVersion: '1.1.0' }, [{}, { STATUS: 'fail' }])).catch((x: unknown) => x)) as NetworkError;
    expect(e.toCniError().code).toBe(111);
  });

  it('validates plugins against the list version and negotiates the best common version', async () => {
    const { runtime } = setup();
    const mixed = parseConfList({ cniVersion: '1.0.0', cniVersions: ['0.4.0', '1.0.0', '1.1.0'], name: 'n', plugins: [{ type: 'rec', capabilities: { ips: true, mac: false } }, { type: 'rec-old', capabilities: { portMappings: true } }] });
    expect(mixed.cniVersion).toBe('1.1.0');
    const e = (await runtime.validateNetworkList(mixed).catch((x: unknown) => x)) as NetworkError;
    expect(e.message).toContain('plugin type="rec-old" does not support config version "1.1.0"');
    const agreed = await runtime.negotiateVersion(mixed);
    expect(agreed.cniVersion).toBe('1.0.0');
    expect(agreed.cniVersions).toBeUndefined();
    expect(await runtime.validateNetworkList(agreed)).toEqual(['ips', 'portMappings']);
    const onlyNew = parseConfList({ cniVersions: ['1.1.0'], name: 'n', plugins: [{ type: 'rec-old' }] });
    await expect(runtime.negotiateVersion(onlyNew)).rejects.toMatchObject({ code: CniCode.IncompatibleVersion });
    expect(await runtime.hasPlugin('rec')).toBe(true);
    expect(await runtime.hasPlugin('nope')).toBe(false);
  });

  it('operations on one attachment never overlap', async () => {
    const { runtime, list, calls } = setup();
    const l = list();
    await Promise.all([runtime.addNetworkList(l, rt), runtime.delNetworkList(l, rt), runtime.addNetworkList(l, rt)]);
    expect(tags(calls())).toEqual(['ADD:a', 'ADD:b', 'ADD:c', 'DEL:c', 'DEL:b', 'DEL:a', 'ADD:a', 'ADD:b', 'ADD:c']);
  });

  it('refuses bad attachment arguments before running anything', async () => {
    const { runtime, list, calls } = setup();
    await expect(runtime.addNetworkList(list(), { ...rt, containerId: 'a/b' })).rejects.toMatchObject({ code: CniCode.InvalidEnvironment });
    await expect(runtime.addNetworkList(list(), { ...rt, ifname: 'way-too-long-name0' })).rejects.toMatchObject({ code: CniCode.InvalidEnvironment });
    await expect(runtime.addNetworkList(list(), { ...rt, netns: undefined })).rejects.toMatchObject({ code: CniCode.InvalidEnvironment });
    await expect(runtime.addNetworkList(list(), { ...rt, args: { 'A;B': '1' } })).rejects.toMatchObject({ code: CniCode.InvalidEnvironment });
    expect(calls()).toEqual([]);
  });

  it('pluginConfig leaves the original plugin entry untouched', () => {
    const l = parseConfList({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 't', capabilities: { mac: true }, nested: { x: 1 } }] });
    const c = pluginConfig(l, l.plugins[0]!, { cniVersion: '1.0.0' }, { mac: 'm' });
    (c.nested as { x: number }).x = 2;
    expect(c).toMatchObject({ name: 'n', cniVersion: '1.0.0', runtimeConfig: { mac: 'm' }, prevResult: { cniVersion: '1.0.0' } });
    expect(l.plugins[0]).toEqual({ type: 't', capabilities: { mac: true }, nested: { x: 1 } });
  });
});
