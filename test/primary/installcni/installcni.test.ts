import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { parseConfList } from '../../../src/cni/conf.js';
import { installCniCommand } from '../../../src/cli/install-cni.js';
import { BUNDLE_DIR, CONFLIST_NAME, installCni, InstallCniError, isSeineConf, moduleClosure, type InstallCniResult } from '../../../src/primary/installcni/index.js';
import { buildShim } from '../cniserver/helpers.js';

const run = (file: string, env: Record<string, string>, stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((done) => {
    const child = execFile(file, [], { env, timeout: 20_000 }, (err, stdout, stderr) => done({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr }));
    child.stdin?.end(stdin);
  });

describe('install-cni', () => {
  let dir: string;
  let confDir: string;
  let binDir: string;
  /** The repository's launcher (lab symlinks point at it). */
  const repoPlugin = resolve('bin/seine-cni');
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

  it('installs a self-contained copy that runs with its own Node.js, idempotently, and replaces a link', async () => {
    // A built tree with the real shim, outside the repository, as in the image.
    const source = buildShim(join(dir, 'tree'));
    await installCni({ confDir, binDir, socket, pluginSource: repoPlugin, link: true });
    const r: InstallCniResult = await installCni({ confDir, binDir, socket, pluginSource: source });
    expect(r.pluginChanged).toBe(true);
    const plugin = join(binDir, 'seine');
    expect(lstatSync(plugin).isFile()).toBe(true);
    accessSync(plugin, constants.X_OK);
    const bundles = readdirSync(join(binDir, BUNDLE_DIR));
    expect(bundles).toHaveLength(1);
    const bundle = join(binDir, BUNDLE_DIR, bundles[0]!);
    expect(readdirSync(bundle).sort()).toEqual(['.complete', 'bin', 'dist', 'node', 'package.json']);
    expect(existsSync(join(bundle, 'dist/src/cni/shim.js'))).toBe(true);

    // The tree may go away: the copy needs nothing from it (nor from PATH).
    rmSync(join(dir, 'tree'), { recursive: true });
    // NODE_EXTRA_CA_CERTS is dropped by the launcher (Node would warn on stderr about a missing bundle).
    const version = await run(plugin, { CNI_COMMAND: 'VERSION', PATH: '/nonexistent', NODE_EXTRA_CA_CERTS: '/nonexistent/ca.pem' }, JSON.stringify({ cniVersion: '1.0.0' }));
    expect(version.stderr).toBe('');
    expect(version.code).toBe(0);
    expect(JSON.parse(version.stdout)).toMatchObject({ supportedVersions: expect.arrayContaining(['1.0.0', '1.1.0']) });
    // ADD with no agent: a CNI error (try again later), from the real shim.
    const add = await run(
      plugin,
      { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: binDir },
      JSON.stringify({ cniVersion: '1.0.0', name: 'seine', type: 'seine', cniSocket: join(dir, 'absent.sock') }),
    );
    expect(add.code).not.toBe(0);
    expect(JSON.parse(add.stdout)).toMatchObject({ code: 11 });

    // Same inputs again: nothing changes (the tree is rebuilt identically).
    const again = await installCni({ confDir, binDir, socket, pluginSource: buildShim(join(dir, 'tree')) });
    expect(again).toMatchObject({ pluginChanged: false, confChanged: false });
    // Back to a link: the copy goes.
    await installCni({ confDir, binDir, socket, pluginSource: repoPlugin, link: true });
    expect(existsSync(join(binDir, BUNDLE_DIR))).toBe(false);
    expect(readdirSync(binDir)).toEqual(['seine']);
  });

  it('follows only relative imports and refuses a plugin that imports packages', async () => {
    const tree = join(dir, 'tree');
    mkdirSync(join(tree, 'bin'), { recursive: true });
    mkdirSync(join(tree, 'dist'), { recursive: true });
    writeFileSync(join(tree, 'bin/plug'), "#!/usr/bin/env node\nawait import(new URL('../dist/a.js', import.meta.url));\n", { mode: 0o755 });
    writeFileSync(join(tree, 'dist/a.js'), "import { b } from './b.js';\nimport { readFileSync } from 'node:fs';\nexport { c } from './c.js';\nconst { connect } = await import('node:net');\nb(readFileSync, connect);\n");
    writeFileSync(join(tree, 'dist/b.js'), "export const b = () => import('./d.js');\n");
    writeFileSync(join(tree, 'dist/c.js'), 'export const c = 1;\n');
    writeFileSync(join(tree, 'dist/d.js'), 'export {};\n');
    expect(await moduleClosure(join(tree, 'bin/plug'), tree)).toEqual(['bin/plug', 'dist/a.js', 'dist/b.js', 'dist/c.js', 'dist/d.js'].map((f) => join(tree, f)));
    writeFileSync(join(tree, 'dist/d.js'), "import { parse } from 'yaml';\nexport { parse };\n");
    await expect(installCni({ confDir, binDir, socket, pluginSource: join(tree, 'bin/plug') })).rejects.toThrow(/imports 'yaml'/);
    expect(existsSync(join(binDir, 'seine'))).toBe(false);
    expect(existsSync(join(confDir, CONFLIST_NAME))).toBe(false);
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
});
