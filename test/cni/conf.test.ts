import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { confFiles, confListFromConf, loadConfListFile, loadDefaultConfList, NoNetworkConfigError } from '../../src/cni/conf.js';
import { CniCode, CniError } from '../../src/cni/errors.js';
import { removeDir, tempDir } from './helpers.js';

const list = (name: string) => JSON.stringify({ cniVersion: '1.0.0', name, plugins: [{ type: 'bridge' }, { type: 'portmap', capabilities: { portMappings: true } }] });
const conf = (name: string) => JSON.stringify({ cniVersion: '0.4.0', name, type: 'macvlan', master: 'eth0', ipam: { type: 'static' } });

describe('config directory loading', () => {
  let root: string;
  let n = 0;
  const dir = (files: Record<string, string>) => {
    const d = join(root, `d${++n}`);
    mkdirSync(d);
    for (const [f, text] of Object.entries(files)) {
      if (text === '<dir>') mkdirSync(join(d, f));
      else writeFileSync(join(d, f), text);
    }
    return d;
  };

  beforeAll(() => {
    root = tempDir();
  });
  afterAll(() => removeDir(root));

  it('picks the lexically first .conf/.conflist/.json, ignoring other files and directories', async () => {
    const d = dir({ '99-last.conflist': list('last'), '10-seine.conflist': list('seine'), '05-notes.txt': 'x', '01-dir.conf': '<dir>', '20-mac.conf': conf('mac') });
    expect((await confFiles(d)).map((p) => p.slice(d.length + 1))).toEqual(['10-seine.conflist', '20-mac.conf', '99-last.conflist']);
    const got = await loadDefaultConfList(d);
    expect(got.path).toBe(join(d, '10-seine.conflist'));
    expect(got.list.name).toBe('seine');
    expect(got.list.plugins.map((p) => p.type)).toEqual(['bridge', 'portmap']);
  });

  it('turns a .conf (or .json) into a one-plugin list carrying its name and version', async () => {
    const got = await loadDefaultConfList(dir({ '10-mac.conf': conf('mac'), '50-x.conflist': list('x') }));
    expect(got.list).toMatchObject({ name: 'mac', cniVersion: '0.4.0', plugins: [{ type: 'macvlan', master: 'eth0', ipam: { type: 'static' } }] });
    expect((await loadDefaultConfList(dir({ 'a.json': conf('js') }))).list.name).toBe('js');
    expect(confListFromConf(JSON.parse(conf('c'))).plugins).toHaveLength(1);
  });

  it('an invalid first file fails by default (containerd), or is skipped on request', async () => {
    const d = dir({ '00-broken.conflist': '{"name": "b", "plugins": [', '10-ok.conflist': list('ok') });
    const err = await loadDefaultConfList(d).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniError);
    expect((err as CniError).code).toBe(CniCode.DecodeFailure);
    expect((err as CniError).message).toContain('00-broken.conflist');
    const got = await loadDefaultConfList(d, { onInvalid: 'skip' });
    expect(got.list.name).toBe('ok');
    expect(got.skipped.map((s) => s.path)).toEqual([join(d, '00-broken.conflist')]);
  });

  it('says where a structurally invalid file is and what is wrong', async () => {
    const d = dir({ 'a.conflist': JSON.stringify({ cniVersion: '1.0.0', name: 'a', plugins: [{ typ: 'bridge' }] }) });
    await expect(loadConfListFile(join(d, 'a.conflist'))).rejects.toThrow(/invalid network configuration list in .*a\.conflist: plugins\[0\]\.type: is required/);
  });

  it('an empty or missing directory has no network', async () => {
    await expect(loadDefaultConfList(dir({ 'readme.md': 'x' }))).rejects.toBeInstanceOf(NoNetworkConfigError);
    await expect(loadDefaultConfList(join(root, 'nope'))).rejects.toThrow(/no network configuration found in/);
    const d = dir({ 'bad.conf': '{}' });
    const e = (await loadDefaultConfList(d, { onInvalid: 'skip' }).catch((x: unknown) => x)) as NoNetworkConfigError;
    expect(e).toBeInstanceOf(NoNetworkConfigError);
    expect(e.skipped).toHaveLength(1);
    expect(e.message).toContain('cniVersion: is required');
  });
});
