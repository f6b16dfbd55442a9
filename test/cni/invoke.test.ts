import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CniCode } from '../../src/cni/errors.js';
import { execPlugin, findPlugin, invokeAdd, invokeNoResult, PluginError, pluginVersionInfo, type ExecOptions } from '../../src/cni/invoke.js';
import { readLog, recorderPlugin, removeDir, tempDir, writeExecutable } from './helpers.js';

async function failure(p: Promise<unknown>): Promise<PluginError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  if (!(e instanceof PluginError)) throw new Error(`expected a PluginError, got ${String(e)}`);
  return e;
}

describe('invoking one plugin binary', () => {
  let dir: string;
  let other: string;
  let log: string;
  let opts: ExecOptions;
  const base = { containerId: 'ctr1', netns: '/var/run/netns/fake', ifname: 'eth0', args: 'IgnoreUnknown=1;K8S_POD_NAME=p' };

  beforeAll(() => {
    dir = tempDir();
    other = join(dir, 'second');
    mkdirSync(other);
    log = join(dir, 'calls.log');
    recorderPlugin(dir, 'rec');
    recorderPlugin(other, 'late');
    writeExecutable(join(dir, 'not-exec'), '#!/bin/sh\n');
    chmodSync(join(dir, 'not-exec'), 0o644);
    writeExecutable(join(dir, 'sig'), '#!/bin/sh\nkill -SEGV $$\n');
    writeExecutable(join(dir, 'silent'), '#!/bin/sh\nexit 0\n');
    opts = { cniPath: [dir, other], timeoutMs: 20_000 };
  });
  afterAll(() => removeDir(dir));

  it('finds plugins in CNI_PATH order and refuses path-like types', async () => {
    expect(await findPlugin('rec', [other, dir])).toBe(join(dir, 'rec'));
    expect(await findPlugin('late', [dir, other])).toBe(join(other, 'late'));
    const e = await failure(findPlugin('../rec', [dir]));
    expect(e.kind).toBe('not-found');
  });

  it('a missing (or non-executable) plugin is a clear not-found error listing the path', async () => {
    for (const type of ['no-such-plugin', 'not-exec']) {
      const e = await failure(invokeAdd(type, { ...base, config: {} }, '1.0.0', opts));
      expect(e.kind).toBe('not-found');
      expect(e.message).toBe(`plugin type="${type}" failed (add): no executable "${type}" in CNI_PATH [${dir}:${other}]`);
    }
  });

  it('passes the CNI_* environment and the config on stdin, dropping our own CNI_* variables', async () => {
    process.env.CNI_COMMAND = 'LEAK';
    process.env.CNI_IFNAME = 'leak0';
    try {
      const config = { cniVersion: '1.0.0', name: 'n', type: 'rec', log, tag: 'first' };
      const r = await invokeAdd('rec', { ...base, config }, '1.0.0', { ...opts, env: { EXTRA: 'x' } });
      expect(r.interfaces).toEqual([{ name: 'first', sandbox: '/var/run/netns/fake' }]);
      const [call] = readLog(log).slice(-1);
      expect(call!.env).toEqual({
        CNI_COMMAND: 'ADD',
        CNI_CONTAINERID: 'ctr1',
        CNI_NETNS: '/var/run/netns/fake',
        CNI_IFNAME: 'eth0',
        CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=p',
        CNI_PATH: `${dir}:${other}`,
      });
      expect(call!.conf).toEqual(config);
    } finally {
      delete process.env.CNI_COMMAND;
      delete process.env.CNI_IFNAME;
    }
  });

  it('omits unset CNI_* variables (GC and STATUS have no attachment)', async () => {
    await invokeNoResult('rec', { command: 'STATUS', config: { cniVersion: '1.1.0', name: 'n', type: 'rec', log } }, opts);
    expect(readLog(log).at(-1)!.env).toEqual({ CNI_COMMAND: 'STATUS', CNI_PATH: `${dir}:${other}` });
  });

  it("converts the plugin's result to the config version", async () => {
    const r = await invokeAdd('rec', { ...base, config: { cniVersion: '1.1.0', name: 'n', type: 'rec' } }, '0.4.0', opts);
    expect(r.cniVersion).toBe('0.4.0');
    expect(r.ips![0]).toEqual({ version: '4', address: '10.9.0.2/24', gateway: '10.9.0.1' });
  });

  it('a CNI error from the plugin keeps its code, message and details', async () => {
    const e = await failure(invokeNoResult('rec', { ...base, command: 'DEL', config: { cniVersion: '1.0.0', name: 'n', type: 'rec', tag: 'x', behavior: { DEL: 'fail' } } }, opts));
    expect(e.kind).toBe('plugin-error');
    expect(e.cniError).toMatchObject({ code: 111, msg: 'x DEL refused', details: 'on purpose' });
    expect(e.message).toBe('plugin type="rec" failed (del): x DEL refused: on purpose (code 111)');
    expect(e.toCniError()).toBe(e.cniError);
  });

  it('garbage on stdout is a clear bad-output error naming the plugin', async () => {
    const e = await failure(invokeAdd('rec', { ...base, config: { cniVersion: '1.0.0', name: 'n', type: 'rec', behavior: { ADD: 'garbage' } } }, '1.0.0', opts));
    expect(e.kind).toBe('bad-output');
    expect(e.message).toBe('plugin type="rec" failed (add): result is not JSON: "this is not json"');
    expect(e.toCniError().code).toBe(CniCode.Internal);
  });

  it('an invalid result says which field is wrong', async () => {
    const e = await failure(invokeAdd('rec', { ...base, config: { cniVersion: '1.0.0', name: 'n', type: 'rec', behavior: { ADD: 'bad-result' } } }, '1.0.0', opts));
    expect(e.kind).toBe('bad-output');
    expect(e.message).toMatch(/invalid result: ips\[0\]\.address: "10\.0\.0\.300\/24" is not an address\/prefix/);
  });

  it('a crash without a CNI error reports the exit status and stderr', async () => {
    const e = await failure(invokeNoResult('rec', { ...base, command: 'CHECK', config: { cniVersion: '1.0.0', name: 'n', type: 'rec', behavior: { CHECK: 'crash' } } }, opts));
    expect(e.kind).toBe('crashed');
    expect(e.message).toBe('plugin type="rec" failed (check): exit 3 without a CNI error (stderr: boom: plugin crashed)');
    expect(e.stderr).toContain('boom');
    const s = await failure(invokeNoResult('sig', { ...base, command: 'DEL', config: {} }, opts));
    expect(s.kind).toBe('crashed');
    expect(s.message).toContain('killed by SIGSEGV');
  });

  it('an ADD that prints nothing is bad output', async () => {
    const e = await failure(invokeAdd('silent', { ...base, config: {} }, '1.0.0', opts));
    expect(e.kind).toBe('bad-output');
  });

  it('a plugin that does not answer in time is killed', async () => {
    // The plugin hangs forever: an answer at all shows it was killed at the timeout.
    const e = await failure(invokeAdd('rec', { ...base, config: { cniVersion: '1.0.0', name: 'n', type: 'rec', behavior: { ADD: 'hang' } } }, '1.0.0', { ...opts, timeoutMs: 1500 }));
    expect(e.kind).toBe('timeout');
    expect(e.message).toBe('plugin type="rec" failed (add): no answer within 1500 ms');
  });

  it('VERSION: the supported versions; a garbage answer is an error', async () => {
    expect(await pluginVersionInfo('rec', opts)).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    writeExecutable(join(dir, 'vgarbage'), '#!/bin/sh\necho "v1"\n');
    const e = await failure(pluginVersionInfo('vgarbage', opts));
    expect(e.kind).toBe('bad-output');
    expect(e.message).toBe('plugin type="vgarbage" failed (version): answer is not JSON: "v1"');
  });

  it('the reference plugins answer VERSION', async () => {
    const info = await pluginVersionInfo('bridge', { cniPath: ['/usr/lib/cni'] });
    expect(info.supportedVersions).toEqual(expect.arrayContaining(['0.4.0', '1.0.0']));
  });

  it('execPlugin returns raw stdout', async () => {
    expect(JSON.parse(await execPlugin('rec', { command: 'VERSION', config: {} }, opts))).toHaveProperty('supportedVersions');
  });
});
