// The chained-mode installer on real files in a temporary conf dir: the first derivation, re-derivation when the
// cloud agent rewrites its list (as aws-node does on restart), half-written and vanishing primaries, uninstall,
// switching modes, and the `seine install-cni` command as the DaemonSet runs it.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CHAINED_CONFLIST_NAME, chainedAfter } from '../../../src/chaining/cnimode/conflist.js';
import { ChainedCniInstaller, type ChainedCniOptions } from '../../../src/chaining/cnimode/install.js';
import { parseConfList } from '../../../src/cni/conf.js';
import { SEINE_CNI_BINARY } from '../../../src/cni/plugin-binary.js';
import { CONFLIST_NAME, installCni } from '../../../src/primary/installcni/index.js';
import { eventually, sleep } from '../../../src/util/wait.js';
import { AWS_CONFLIST, AZURE_CONFLIST, json, LOOPBACK_CONF, SOCKET } from './conflist-fixtures.js';

const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
const readIf = (path: string): string | undefined => (existsSync(path) ? readFileSync(path, 'utf8') : undefined);
/** The product re-derives within 2 s of a change; tests wait much longer because CI machines are loaded. */
const REDERIVE_WAIT_MS = 30_000;
/** Never reached by the poll in these tests: a re-derivation within them comes from the directory watch. */
const NO_POLL_MS = 3_600_000;
const repoPlugin = SEINE_CNI_BINARY;

describe('chained install-cni', () => {
  let dir: string;
  let confDir: string;
  let binDir: string;
  let installers: ChainedCniInstaller[];
  const seineFile = (): string => join(confDir, CHAINED_CONFLIST_NAME);
  const aws = (): string => join(confDir, '10-aws.conflist');
  const make = (opts: Partial<ChainedCniOptions> = {}): ChainedCniInstaller => {
    const i = new ChainedCniInstaller({ confDir, socket: SOCKET, pollMs: NO_POLL_MS, retryMs: 100, ...opts });
    installers.push(i);
    return i;
  };
  /** Seine's file once it chains after `types` (and the cloud's network name `name`). */
  const derivedAfter = (types: string[], check: (list: Record<string, unknown>) => boolean = () => true): Promise<string> =>
    eventually(
      `${CHAINED_CONFLIST_NAME} chaining after ${types.join(', ')}`,
      async (saw) => {
        const text = readIf(seineFile());
        saw(text ?? `no ${CHAINED_CONFLIST_NAME}`);
        return text !== undefined && JSON.stringify(chainedAfter(text)?.primaryTypes) === JSON.stringify(types) && check(JSON.parse(text) as Record<string, unknown>) ? text : undefined;
      },
      REDERIVE_WAIT_MS,
    );

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'seine-chained-'));
    confDir = join(dir, 'etc/cni/net.d');
    binDir = join(dir, 'opt/cni/bin');
    mkdirSync(confDir, { recursive: true });
    installers = [];
  });
  afterEach(async () => {
    for (const i of installers) await i.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("derives 05-seine.conflist from the cloud's list, and never writes the cloud's files", async () => {
    writeFileSync(aws(), json(AWS_CONFLIST));
    writeFileSync(join(confDir, '99-loopback.conf'), json(LOOPBACK_CONF));
    const before = { aws: sha256(aws()), loopback: sha256(join(confDir, '99-loopback.conf')) };
    const status = await make().start();
    expect(status).toMatchObject({ confPath: seineFile(), primary: aws(), primaryTypes: ['aws-cni', 'egress-cni', 'portmap'] });
    expect(status.lastError).toBeUndefined();
    const text = readFileSync(seineFile(), 'utf8');
    expect(parseConfList(text)).toMatchObject({ name: 'aws-cni', cniVersion: '0.4.0', disableCheck: true });
    expect(statSync(seineFile()).mode & 0o777).toBe(0o644);
    expect(readdirSync(confDir).sort()).toEqual([CHAINED_CONFLIST_NAME, '10-aws.conflist', '99-loopback.conf']);
    expect({ aws: sha256(aws()), loopback: sha256(join(confDir, '99-loopback.conf')) }).toEqual(before);
  });

  it('an unchanged primary writes nothing, also across a restart of the installer', async () => {
    writeFileSync(aws(), json(AWS_CONFLIST));
    const first = make();
    const s1 = await first.start();
    await first.stop();
    const inode = statSync(seineFile()).ino;
    const s2 = await make().start();
    // A write is a rename of a new file: the same inode means the file was left alone.
    expect(statSync(seineFile()).ino).toBe(inode);
    expect(s2.writtenAt).toBeUndefined();
    expect(s1.writtenAt?.getTime()).toEqual(expect.any(Number));
  });

  it('re-derives after aws-node rewrites its list, from the directory watch alone', async () => {
    writeFileSync(aws(), json(AWS_CONFLIST));
    const installer = make();
    await installer.start();
    // aws-node's restart: its list comes back with other settings (here another MTU and no egress plugin).
    const restarted = { ...AWS_CONFLIST, plugins: [{ ...AWS_CONFLIST.plugins[0]!, mtu: '1500' }, AWS_CONFLIST.plugins[2]!] };
    writeFileSync(aws(), json(restarted));
    const written = sha256(aws());
    const text = await derivedAfter(['aws-cni', 'portmap'], (l) => (l.plugins as Array<{ mtu?: string }>)[0]?.mtu === '1500');
    expect(JSON.parse(text)).toEqual({ ...restarted, plugins: [...restarted.plugins, { type: 'seine', cniSocket: SOCKET }] });
    expect(installer.status.primaryTypes).toEqual(['aws-cni', 'portmap']);
    expect(sha256(aws())).toBe(written);
  });

  it('a half-written primary never makes a broken file: the last good one stays until the rest is written', async () => {
    writeFileSync(aws(), json(AWS_CONFLIST));
    const installer = make();
    await installer.start();
    const good = readFileSync(seineFile(), 'utf8');
    // A reader like the runtime, all along: Seine's file is always a whole, valid list.
    const seen = new Set<string>();
    let reading = true;
    const reader = (async () => {
      while (reading) {
        seen.add(readFileSync(seineFile(), 'utf8'));
        await sleep(5);
      }
    })();
    try {
      const next = json({ ...AWS_CONFLIST, plugins: [{ ...AWS_CONFLIST.plugins[0]!, vethPrefix: 'pod' }, ...AWS_CONFLIST.plugins.slice(1)] });
      writeFileSync(aws(), next.slice(0, 120));
      await eventually('the installer to report the half-written primary', async (saw) => {
        saw(installer.status);
        return installer.status.lastError?.includes('10-aws.conflist: not valid JSON') ? true : undefined;
      }, REDERIVE_WAIT_MS);
      expect(readFileSync(seineFile(), 'utf8')).toBe(good);
      expect(installer.status.primaryTypes).toEqual(['aws-cni', 'egress-cni', 'portmap']);
      writeFileSync(aws(), next);
      await derivedAfter(['aws-cni', 'egress-cni', 'portmap'], (l) => (l.plugins as Array<{ vethPrefix?: string }>)[0]?.vethPrefix === 'pod');
      expect(installer.status.lastError).toBeUndefined();
    } finally {
      reading = false;
      await reader;
    }
    for (const text of seen) expect(chainedAfter(text)?.primaryTypes).toEqual(['aws-cni', 'egress-cni', 'portmap']);
  });

  it('keeps its file while the primary is gone (not taking 99-loopback.conf), and re-derives when it is back', async () => {
    writeFileSync(aws(), json(AWS_CONFLIST));
    writeFileSync(join(confDir, '99-loopback.conf'), json(LOOPBACK_CONF));
    const installer = make();
    await installer.start();
    const good = readFileSync(seineFile(), 'utf8');
    unlinkSync(aws());
    await eventually('the installer to report the primary gone', async (saw) => {
      saw(installer.status);
      return installer.status.lastError?.includes('10-aws.conflist: gone') ? true : undefined;
    }, REDERIVE_WAIT_MS);
    expect(readFileSync(seineFile(), 'utf8')).toBe(good);
    // Written the way many agents write: a temporary file renamed over the name.
    writeFileSync(join(confDir, 'aws.tmp'), json({ ...AWS_CONFLIST, disableCheck: false }));
    renameSync(join(confDir, 'aws.tmp'), aws());
    await derivedAfter(['aws-cni', 'egress-cni', 'portmap'], (l) => l.disableCheck === false);
  });

  it('start waits for a primary being written, and a bounded wait says what it found', async () => {
    writeFileSync(join(confDir, '10-azure.conflist'), json(AZURE_CONFLIST).slice(0, 30));
    writeFileSync(join(confDir, 'README'), 'not a network');
    const waiting = make().start({ waitMs: 60_000 });
    let settled = false;
    void waiting.then(() => (settled = true), () => (settled = true));
    await eventually('the installer to report the half-written primary', async () => (installers[0]!.status.lastError?.includes('not valid JSON') ? true : undefined), REDERIVE_WAIT_MS);
    expect(settled).toBe(false);
    expect(existsSync(seineFile())).toBe(false);
    writeFileSync(join(confDir, '10-azure.conflist'), json(AZURE_CONFLIST));
    expect((await waiting).primaryTypes).toEqual(['azure-vnet', 'portmap']);

    const other = mkdtempSync(join(dir, 'other-'));
    writeFileSync(join(other, '10-azure.conflist'), '{"cniVersion": "0.3.0", "name": "azu');
    writeFileSync(join(other, '99-loopback.conf'), json(LOOPBACK_CONF));
    const bounded = new ChainedCniInstaller({ confDir: other, socket: SOCKET, retryMs: 100 });
    installers.push(bounded);
    const err = await bounded.start({ waitMs: 1_000 }).then(() => undefined, (e: Error) => e);
    expect(err?.message).toMatch(new RegExp(`no usable primary network configuration in ${other} after 1 s: 10-azure\\.conflist: not valid JSON`));
    expect(err?.message).toMatch(/found: 10-azure\.conflist \(not valid JSON .*\), 99-loopback\.conf \(sorts after the primary 10-azure\.conflist\)/);
    expect(readdirSync(other).sort()).toEqual(['10-azure.conflist', '99-loopback.conf']);
  });

  it('does not chain after a list that already runs Seine', async () => {
    const edited = json({ ...AWS_CONFLIST, plugins: [...AWS_CONFLIST.plugins, { type: 'seine', cniSocket: SOCKET }] });
    writeFileSync(aws(), edited);
    const err = await make().start({ waitMs: 500 }).then(() => undefined, (e: Error) => e);
    expect(err?.message).toMatch(/10-aws\.conflist: already runs the 'seine' plugin/);
    expect(existsSync(seineFile())).toBe(false);
    expect(readFileSync(aws(), 'utf8')).toBe(edited);
  });

  it("uninstall removes Seine's file and its temporary files, nothing else", async () => {
    writeFileSync(aws(), json(AWS_CONFLIST));
    writeFileSync(join(confDir, '99-loopback.conf'), json(LOOPBACK_CONF));
    writeFileSync(join(confDir, '.seine-tmp-05-seine.conflist-1-dead'), '{"cniVersion":');
    const hashes = (): string[] => ['10-aws.conflist', '99-loopback.conf'].map((n) => sha256(join(confDir, n)));
    const before = hashes();
    const installer = make();
    await installer.start();
    // An interrupted write of an earlier run is gone with the start already.
    expect(readdirSync(confDir).sort()).toEqual([CHAINED_CONFLIST_NAME, '10-aws.conflist', '99-loopback.conf']);
    writeFileSync(join(confDir, '.seine-tmp-05-seine.conflist-2-beef'), '{');
    expect((await installer.uninstall()).sort()).toEqual([join(confDir, '.seine-tmp-05-seine.conflist-2-beef'), seineFile()].sort());
    expect(readdirSync(confDir).sort()).toEqual(['10-aws.conflist', '99-loopback.conf']);
    expect(hashes()).toEqual(before);
    // Stopped: a later change of the cloud's list brings nothing back.
    writeFileSync(aws(), json({ ...AWS_CONFLIST, disableCheck: false }));
    await sleep(1_000);
    expect(existsSync(seineFile())).toBe(false);
  });

  it('switching a node between primary and chained mode leaves exactly the one file of the mode', async () => {
    writeFileSync(aws(), json(AWS_CONFLIST));
    const cloud = sha256(aws());
    const seineFiles = (): string[] => readdirSync(confDir).filter((n) => n !== '10-aws.conflist').sort();
    await installCni({ confDir, binDir, socket: SOCKET, pluginSource: repoPlugin, link: true });
    expect(seineFiles()).toEqual([CONFLIST_NAME]);

    const chained = make({ plugin: { binDir, pluginSource: repoPlugin, link: true } });
    await chained.start();
    expect(seineFiles()).toEqual([CHAINED_CONFLIST_NAME]);
    expect(readdirSync(binDir)).toEqual(['seine']);
    await chained.stop();

    await installCni({ confDir, binDir, socket: SOCKET, pluginSource: repoPlugin, link: true });
    expect(seineFiles()).toEqual([CONFLIST_NAME]);
    expect(sha256(aws())).toBe(cloud);
  });

  it("installs the plugin as a copy of the binary, removing an earlier version's seine-cni.d", async () => {
    writeFileSync(aws(), json(AWS_CONFLIST));
    mkdirSync(join(binDir, 'seine-cni.d', '0123456789abcdef'), { recursive: true });
    writeFileSync(join(binDir, 'seine'), '#!/bin/sh\n', { mode: 0o755 });
    await make({ plugin: { binDir, pluginSource: repoPlugin } }).start();
    expect(readdirSync(binDir)).toEqual(['seine']);
    expect(sha256(join(binDir, 'seine'))).toBe(sha256(repoPlugin));
    expect(statSync(join(binDir, 'seine')).mode & 0o777).toBe(0o755);
    expect(existsSync(seineFile())).toBe(true);
  });
});

describe('seine install-cni --mode chained (the command)', () => {
  let dir: string;
  let confDir: string;
  let child: ChildProcess | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'seine-chained-cli-'));
    confDir = join(dir, 'net.d');
    mkdirSync(confDir);
  });
  afterEach(() => {
    // Only the process this test spawned, by its pid.
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    child = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  const seine = (args: string[]): { proc: ChildProcess; out: () => string; exited: Promise<number | null> } => {
    let out = '';
    const proc = spawn(process.execPath, [resolve('bin/seine'), 'install-cni', ...args], { env: { ...process.env, SEINE_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((done) => proc.on('exit', (code) => done(code)));
    return { proc, out: () => out, exited };
  };
  const common = (): string[] => ['--cni-conf-dir', confDir, '--cni-bin-dir', join(dir, 'bin'), '--cni-socket', SOCKET, '--link', '--plugin-source', SEINE_CNI_BINARY];

  it('--watch derives, re-derives after a rewrite, and exits 0 on SIGTERM leaving the file', async () => {
    writeFileSync(join(confDir, '10-aws.conflist'), json(AWS_CONFLIST));
    const run = seine(['--mode', 'chained', '--watch', ...common()]);
    child = run.proc;
    const path = join(confDir, CHAINED_CONFLIST_NAME);
    await eventually(`${path} written by the command`, async (saw) => {
      saw(run.out());
      return chainedAfter(readIf(path) ?? '')?.name === 'aws-cni' ? true : undefined;
    }, REDERIVE_WAIT_MS);
    expect(readdirSync(join(dir, 'bin'))).toEqual(['seine']);
    writeFileSync(join(confDir, '10-aws.conflist'), json({ ...AWS_CONFLIST, plugins: [AWS_CONFLIST.plugins[0]!] }));
    // The product promise is 2 s; the wait is longer because CI machines are loaded.
    await eventually('the re-derived list', async (saw) => {
      saw(readIf(path));
      return JSON.stringify(chainedAfter(readIf(path) ?? '')?.primaryTypes) === '["aws-cni"]' ? true : undefined;
    }, REDERIVE_WAIT_MS);
    // Every derivation is logged with the primary, its plugin types and whether the file changed (the line comes
    // after the file is written, and through a pipe: it is waited for too).
    const derivations = (): Array<{ primary: string; primaryTypes: string[]; changed: boolean }> =>
      run.out().split('\n').filter((l) => l.includes('"msg":"derived 05-seine.conflist"')).map((l) => JSON.parse(l) as { primary: string; primaryTypes: string[]; changed: boolean });
    const rederived = (d: { primary: string; primaryTypes: string[]; changed: boolean }): boolean => d.primary === join(confDir, '10-aws.conflist') && JSON.stringify(d.primaryTypes) === '["aws-cni"]' && d.changed;
    await eventually('the re-derivation logged', async (saw) => {
      saw(derivations());
      return derivations().some(rederived) || undefined;
    }, REDERIVE_WAIT_MS);
    child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(chainedAfter(readFileSync(path, 'utf8'))?.primaryTypes).toEqual(['aws-cni']);
  });

  it('without --watch a broken primary fails after --wait naming what it found; primary mode and --uninstall replace and remove the file', async () => {
    writeFileSync(join(confDir, '10-azure.conflist'), '{"cniVersion":"0.3.0",');
    const failed = seine(['--mode', 'chained', '--wait', '1', ...common()]);
    child = failed.proc;
    expect(await failed.exited).not.toBe(0);
    expect(failed.out()).toContain(`seine: no usable primary network configuration in ${confDir} after 1 s: 10-azure.conflist: not valid JSON`);

    writeFileSync(join(confDir, '10-azure.conflist'), json(AZURE_CONFLIST));
    const ok = seine(['--mode', 'chained', ...common()]);
    child = ok.proc;
    expect(await ok.exited).toBe(0);
    expect(chainedAfter(readFileSync(join(confDir, CHAINED_CONFLIST_NAME), 'utf8'))?.primaryTypes).toEqual(['azure-vnet', 'portmap']);

    // Switched to primary mode: its own list replaces the chained one.
    const primary = seine(['--mode', 'primary', ...common()]);
    child = primary.proc;
    expect(await primary.exited).toBe(0);
    expect(readdirSync(confDir).sort()).toEqual(['10-azure.conflist', CONFLIST_NAME]);

    // Uninstall removes the file of its mode only.
    const notThisMode = seine(['--mode', 'chained', '--uninstall', '--cni-conf-dir', confDir]);
    child = notThisMode.proc;
    expect(await notThisMode.exited).toBe(0);
    expect(readdirSync(confDir).sort()).toEqual(['10-azure.conflist', CONFLIST_NAME]);
    const gone = seine(['--mode', 'primary', '--uninstall', '--cni-conf-dir', confDir]);
    child = gone.proc;
    expect(await gone.exited).toBe(0);
    expect(readdirSync(confDir)).toEqual(['10-azure.conflist']);
  });
});
