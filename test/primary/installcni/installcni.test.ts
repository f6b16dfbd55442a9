import { execFile } from 'node:child_process';
import { accessSync, appendFileSync, chmodSync, constants, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { parseConfList } from '../../../src/cni/conf.js';
import { SEINE_CNI_BINARY } from '../../../src/cni/plugin-binary.js';
import { installCniCommand } from '../../../src/cli/install-cni.js';
import { BUNDLE_DIR, CONFLIST_NAME, installCni, InstallCniError, isSeineConf, type InstallCniResult } from '../../../src/primary/installcni/index.js';

const run = (file: string, env: Record<string, string>, stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((done) => {
    const child = execFile(file, [], { env, timeout: 20_000 }, (err, stdout, stderr) => done({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr }));
    // A plugin may answer (VERSION) and exit before reading its stdin: the write then fails with EPIPE, harmlessly.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(stdin);
  });

describe('install-cni', () => {
  let dir: string;
  let confDir: string;
  let binDir: string;
  /** The build's plugin binary (lab symlinks point at it). */
  const repoPlugin = SEINE_CNI_BINARY;
  const socket = '/var/run/seine/cni.sock';

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'seine-installcni-'));
    confDir = join(dir, 'etc/cni/net.d');
    binDir = join(dir, 'opt/cni/bin');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('links the plugin and writes a valid conflist, and a second run changes nothing', async () => {
    const first = await installCni({ confDir, binDir, socket, pluginSource: repoPlugin, link: true });
    expect(first).toMatchObject({ confChanged: true, pluginChanged: true, removed: [] });
    const conf = join(confDir, CONFLIST_NAME);
    const text = readFileSync(conf, 'utf8');
    // cniVersion for runtimes whose libcni reads only that (1.1: no 1.1.0 results); the newest for the others.
    expect(JSON.parse(text)).toEqual({ cniVersion: '1.0.0', cniVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'], name: 'seine', plugins: [{ type: 'seine', cniSocket: socket }] });
    const list = parseConfList(text);
    expect(list.cniVersion).toBe('1.1.0');
    expect(parseConfList(text, { supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] }).cniVersion).toBe('1.0.0');
    expect(list.plugins.map((p) => p.type)).toEqual(['seine']);
    expect(statSync(conf).mode & 0o777).toBe(0o644);
    const plugin = join(binDir, 'seine');
    expect(lstatSync(plugin).isSymbolicLink()).toBe(true);
    expect(readlinkSync(plugin)).toBe(repoPlugin);
    accessSync(plugin, constants.X_OK);

    const mtime = statSync(conf).mtimeMs;
    const again = await installCni({ confDir, binDir, socket, pluginSource: repoPlugin, link: true });
    expect(again).toMatchObject({ confChanged: false, pluginChanged: false, removed: [] });
    expect(statSync(conf).mtimeMs).toBe(mtime);
    // Nothing but the two files (no temp files left behind).
    expect(readdirSync(confDir)).toEqual([CONFLIST_NAME]);
    expect(readdirSync(binDir)).toEqual(['seine']);
  });

  it('overwrites its own conflist when the settings change, and chains portmap on request', async () => {
    await installCni({ confDir, binDir, socket, pluginSource: repoPlugin, link: true });
    const r = await installCni({ confDir, binDir, socket: '/run/seine/other.sock', pluginSource: repoPlugin, link: true, chainPortmap: true });
    expect(r.confChanged).toBe(true);
    const list = parseConfList(readFileSync(r.confPath, 'utf8'));
    expect(list.plugins).toEqual([
      { type: 'seine', cniSocket: '/run/seine/other.sock' },
      { type: 'portmap', capabilities: { portMappings: true } },
    ]);
    // The reference portmap plugin in use stops at 1.0.0: no runtime may pick 1.1.0 for this list.
    expect(list.cniVersion).toBe('1.0.0');
    expect(list.cniVersions).toBeUndefined();
  });

  it('refuses to replace a conflist of the same name that is not Seine\'s', async () => {
    mkdirSync(confDir, { recursive: true });
    const foreign = JSON.stringify({ cniVersion: '1.0.0', name: 'k8s-pod-network', plugins: [{ type: 'calico' }] });
    writeFileSync(join(confDir, CONFLIST_NAME), foreign);
    await expect(installCni({ confDir, binDir, socket, pluginSource: repoPlugin, link: true })).rejects.toThrow(InstallCniError);
    await expect(installCni({ confDir, binDir, socket, pluginSource: repoPlugin, link: true })).rejects.toThrow(/is not Seine's/);
    expect(readFileSync(join(confDir, CONFLIST_NAME), 'utf8')).toBe(foreign);
    expect(existsSync(join(binDir, 'seine'))).toBe(false);
  });

  it('removes the Seine conflists of earlier installs and interrupted writes, and leaves other networks alone', async () => {
    mkdirSync(confDir, { recursive: true });
    const old = JSON.stringify({ cniVersion: '0.4.0', name: 'seine', plugins: [{ type: 'seine' }] });
    writeFileSync(join(confDir, '05-seine.conflist'), old);
    writeFileSync(join(confDir, '99-seine.conf'), JSON.stringify({ cniVersion: '0.4.0', name: 'seine', type: 'seine' }));
    writeFileSync(join(confDir, '.seine-tmp-10-seine.conflist-1-abcd'), '{"cniVersion":');
    const other = JSON.stringify({ cniVersion: '1.0.0', name: 'macvlan-net', plugins: [{ type: 'macvlan', master: 'eth1' }] });
    writeFileSync(join(confDir, '20-macvlan.conflist'), other);
    writeFileSync(join(confDir, 'README'), 'not a network');
    const r = await installCni({ confDir, binDir, socket, pluginSource: repoPlugin, link: true });
    expect(r.removed.sort()).toEqual([join(confDir, '.seine-tmp-10-seine.conflist-1-abcd'), join(confDir, '05-seine.conflist'), join(confDir, '99-seine.conf')].sort());
    expect(readdirSync(confDir).sort()).toEqual([CONFLIST_NAME, '20-macvlan.conflist', 'README']);
    expect(readFileSync(join(confDir, '20-macvlan.conflist'), 'utf8')).toBe(other);
  });

  it('rejects a relative socket and a plugin source that is not executable', async () => {
    await expect(installCni({ confDir, binDir, socket: 'cni.sock', pluginSource: repoPlugin, link: true })).rejects.toThrow(/absolute/);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'plain'), '#!/bin/sh\n');
    await expect(installCni({ confDir, binDir, socket, pluginSource: join(dir, 'plain'), link: true })).rejects.toThrow(/not an executable/);
    expect(existsSync(join(confDir, CONFLIST_NAME))).toBe(false);
  });

  /** The plugin's answer to VERSION, run as a runtime runs it (no PATH needed). */
  const version = async (plugin: string): Promise<unknown> => {
    const r = await run(plugin, { CNI_COMMAND: 'VERSION', PATH: '/nonexistent' }, JSON.stringify({ cniVersion: '1.0.0' }));
    expect(r).toMatchObject({ code: 0, stderr: '' });
    return JSON.parse(r.stdout);
  };

  it('installs a byte-identical copy of the binary that answers VERSION, idempotently, and replaces a link', async () => {
    await installCni({ confDir, binDir, socket, pluginSource: repoPlugin, link: true });
    const r: InstallCniResult = await installCni({ confDir, binDir, socket, pluginSource: repoPlugin });
    expect(r.pluginChanged).toBe(true);
    const plugin = join(binDir, 'seine');
    expect(lstatSync(plugin).isFile()).toBe(true);
    expect(statSync(plugin).mode & 0o777).toBe(0o755);
    expect(readFileSync(plugin).equals(readFileSync(repoPlugin))).toBe(true);
    expect(await version(plugin)).toMatchObject({ cniVersion: '1.1.0', supportedVersions: expect.arrayContaining(['1.0.0', '1.1.0']) });
    // ADD with no agent: a CNI error (try again later).
    const add = await run(
      plugin,
      { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: binDir },
      JSON.stringify({ cniVersion: '1.0.0', name: 'seine', type: 'seine', cniSocket: join(dir, 'absent.sock') }),
    );
    expect(add.code).not.toBe(0);
    expect(JSON.parse(add.stdout)).toMatchObject({ code: 11 });

    // Same source again: the file is left alone (same inode, same mtime).
    const { ino, mtimeMs } = statSync(plugin);
    const again = await installCni({ confDir, binDir, socket, pluginSource: repoPlugin });
    expect(again).toMatchObject({ pluginChanged: false, confChanged: false });
    expect(statSync(plugin)).toMatchObject({ ino, mtimeMs });
    expect(readdirSync(binDir)).toEqual(['seine']);
    // Back to a link.
    expect((await installCni({ confDir, binDir, socket, pluginSource: repoPlugin, link: true })).pluginChanged).toBe(true);
    expect(readlinkSync(plugin)).toBe(repoPlugin);
    expect(readdirSync(binDir)).toEqual(['seine']);
  });

  it('installs a changed source again, a copy that needs nothing of its source, and restores a lost execute bit', async () => {
    await installCni({ confDir, binDir, socket, pluginSource: repoPlugin });
    const plugin = join(binDir, 'seine');
    const ino = statSync(plugin).ino;
    // Another build: the binary with a byte appended (an ELF file runs the same with trailing bytes).
    const source = join(dir, 'seine-cni');
    copyFileSync(repoPlugin, source);
    appendFileSync(source, Buffer.from([0]));
    chmodSync(source, 0o755);
    const r = await installCni({ confDir, binDir, socket, pluginSource: source });
    expect(r).toMatchObject({ pluginChanged: true, confChanged: false });
    expect(readFileSync(plugin).equals(readFileSync(source))).toBe(true);
    // Renamed over, not written into: a plugin run in progress keeps the old file.
    expect(statSync(plugin).ino).not.toBe(ino);
    rmSync(source);
    expect(await version(plugin)).toMatchObject({ cniVersion: '1.1.0' });

    // The same content without the execute bit is not in place.
    expect((await installCni({ confDir, binDir, socket, pluginSource: repoPlugin })).pluginChanged).toBe(true);
    chmodSync(plugin, 0o644);
    expect((await installCni({ confDir, binDir, socket, pluginSource: repoPlugin })).pluginChanged).toBe(true);
    expect((await installCni({ confDir, binDir, socket, pluginSource: repoPlugin })).pluginChanged).toBe(false);
    expect(statSync(plugin).mode & 0o777).toBe(0o755);
    expect(readdirSync(binDir)).toEqual(['seine']);
  });

  it.each([false, true])("removes an earlier version's seine-cni.d bundle and interrupted writes (link: %s)", async (link) => {
    // What an earlier version installed: a launcher script running its bundled Node.js.
    const bundle = join(binDir, BUNDLE_DIR, '0123456789abcdef');
    mkdirSync(join(bundle, 'bin'), { recursive: true });
    writeFileSync(join(bundle, 'node'), 'not really node', { mode: 0o755 });
    writeFileSync(join(bundle, '.complete'), '');
    writeFileSync(join(binDir, 'seine'), `#!/bin/sh\nexec ${join(bundle, 'node')} ${join(bundle, 'bin/seine-cni')} "$@"\n`, { mode: 0o755 });
    writeFileSync(join(binDir, '.seine-tmp-seine-1-abcd'), 'half');
    writeFileSync(join(binDir, 'portmap'), 'another plugin', { mode: 0o755 });
    const r = await installCni({ confDir, binDir, socket, pluginSource: repoPlugin, link });
    expect(r.pluginChanged).toBe(true);
    expect(readdirSync(binDir).sort()).toEqual(['portmap', 'seine']);
    expect(readFileSync(join(binDir, 'portmap'), 'utf8')).toBe('another plugin');
    expect(await version(join(binDir, 'seine'))).toMatchObject({ cniVersion: '1.1.0' });
  });

  it('refuses a source that is not an executable file before writing anything', async () => {
    const bundle = join(binDir, BUNDLE_DIR);
    mkdirSync(bundle, { recursive: true });
    const plain = join(dir, 'plain');
    writeFileSync(plain, readFileSync(repoPlugin), { mode: 0o644 });
    const directory = join(dir, 'tree');
    mkdirSync(directory, { mode: 0o755 });
    for (const pluginSource of [plain, directory, join(dir, 'absent')]) {
      await expect(installCni({ confDir, binDir, socket, pluginSource })).rejects.toThrow(InstallCniError);
      await expect(installCni({ confDir, binDir, socket, pluginSource })).rejects.toThrow(/is not an executable file/);
    }
    expect(readdirSync(binDir)).toEqual([BUNDLE_DIR]);
    expect(existsSync(confDir)).toBe(false);
  });

  it('isSeineConf tells Seine networks from others', () => {
    expect(isSeineConf('{"name":"x","plugins":[{"type":"bridge"},{"type":"seine"}]}')).toBe(true);
    expect(isSeineConf('{"name":"x","type":"seine"}')).toBe(true);
    expect(isSeineConf('{"name":"seine","plugins":[{"type":"bridge"}]}')).toBe(false);
    expect(isSeineConf('not json')).toBe(false);
  });

  it('the command takes the paths from the agent config, flags overriding', async () => {
    const config = join(dir, 'agent.yaml');
    writeFileSync(config, stringifyYaml({ cniConfDir: confDir, cniBinDir: join(dir, 'unused'), cniSocket: '/run/seine/agent.sock' }));
    let result: InstallCniResult | undefined;
    await installCniCommand({ onDone: (r) => (result = r) }).parseAsync(['--config', config, '--cni-bin-dir', binDir, '--plugin-source', repoPlugin, '--link', '--chain-portmap'], { from: 'user' });
    expect(result?.confPath).toBe(join(confDir, CONFLIST_NAME));
    expect(result?.pluginPath).toBe(join(binDir, 'seine'));
    expect(parseConfList(readFileSync(join(confDir, CONFLIST_NAME))).plugins).toEqual([
      { type: 'seine', cniSocket: '/run/seine/agent.sock' },
      { type: 'portmap', capabilities: { portMappings: true } },
    ]);
    expect(existsSync(join(dir, 'unused'))).toBe(false);
  });

  it('the command copies the build\'s binary by default', async () => {
    let result: InstallCniResult | undefined;
    await installCniCommand({ onDone: (r) => (result = r) }).parseAsync(['--cni-conf-dir', confDir, '--cni-bin-dir', binDir, '--cni-socket', socket], { from: 'user' });
    expect(result).toMatchObject({ pluginPath: join(binDir, 'seine'), pluginChanged: true });
    expect(lstatSync(join(binDir, 'seine')).isFile()).toBe(true);
    expect(readFileSync(join(binDir, 'seine')).equals(readFileSync(SEINE_CNI_BINARY))).toBe(true);
  });
});
