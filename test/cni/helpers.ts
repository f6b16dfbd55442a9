import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ResourceLedger, reapStaleLedgers } from '../../src/host/ledger.js';
import { createNetns } from '../../src/host/netns.js';
import { TEST_LEDGER_ROOT } from '../harness/sandbox.js';

/** A private temp dir (no namespaces): remove with rmSync in afterAll. */
export function tempDir(prefix = 'seine-cni-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Writes an executable file. */
export function writeExecutable(path: string, text: string): string {
  writeFileSync(path, text);
  chmodSync(path, 0o755);
  return path;
}

/**
 * A scriptable CNI plugin (plain CommonJS run by this node binary), for exercising the runtime without root.
 * It appends each invocation {cmd, env, conf} as a JSON line to `conf.log`, and acts on
 * `conf.behavior[CNI_COMMAND]`: "fail" (error code 111), "garbage" (non-JSON, exit 0), "crash" (exit 3
 * with stderr), "hang", "bad-result" (schema-valid JSON with a bad address), else success. ADD returns
 * prevResult with one interface named after `conf.tag` added (or a fresh result). VERSION answers
 * `versions`.
 */
export function recorderPlugin(dir: string, name: string, versions: readonly string[] = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']): string {
  return writeExecutable(
    join(dir, name),
    `#!${process.execPath}
const { appendFileSync, readFileSync } = require('node:fs');
const cmd = process.env.CNI_COMMAND;
const conf = JSON.parse(readFileSync(0, 'utf8') || '{}');
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('CNI_')));
if (conf.log) appendFileSync(conf.log, JSON.stringify({ cmd, type: ${JSON.stringify(name)}, env, conf }) + '\\n');
const out = (o) => process.stdout.write(JSON.stringify(o));
if (cmd === 'VERSION') { out({ cniVersion: '1.1.0', supportedVersions: ${JSON.stringify(versions)} }); process.exit(0); }
const act = (conf.behavior || {})[cmd];
if (act === 'fail') { out({ cniVersion: conf.cniVersion, code: 111, msg: conf.tag + ' ' + cmd + ' refused', details: 'on purpose' }); process.exit(1); }
if (act === 'garbage') { process.stdout.write('this is not json'); process.exit(0); }
if (act === 'crash') { process.stderr.write('boom: plugin crashed\\n'); process.exit(3); }
if (act === 'hang') { setInterval(() => {}, 1000); }
else if (cmd === 'ADD') {
  if (act === 'bad-result') { out({ cniVersion: conf.cniVersion, ips: [{ address: '10.0.0.300/24' }] }); process.exit(0); }
  const pre1 = conf.cniVersion.startsWith('0.');
  const r = conf.prevResult || { cniVersion: conf.cniVersion, interfaces: [], ips: [{ ...(pre1 ? { version: '4' } : {}), address: '10.9.0.2/24', gateway: '10.9.0.1' }] };
  r.interfaces = [...(r.interfaces || []), { name: conf.tag || ${JSON.stringify(name)}, sandbox: process.env.CNI_NETNS }];
  out(r);
}
`,
  );
}

/** Invocations a recorder plugin logged, in order. */
export interface Logged {
  cmd: string;
  type: string;
  env: Record<string, string>;
  conf: Record<string, unknown> & { tag?: string; prevResult?: unknown; runtimeConfig?: Record<string, unknown> };
}

export function readLog(path: string): Logged[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Logged);
}

/**
 * Namespaces for runtime tests: a "node" netns in which plugins run, plus pod namespaces, all recorded
 * in a ledger under TEST_LEDGER_ROOT so that even a crashed run is cleaned up by the next one.
 */
export class NetnsTestEnv {
  private pods = 0;

  private constructor(
    readonly id: string,
    readonly ledger: ResourceLedger,
    readonly nodeNetns: string,
  ) {}

  /** Scratch space inside the ledger dir (removed with it). */
  get dir(): string {
    return this.ledger.dir;
  }

  static async start(): Promise<NetnsTestEnv> {
    await reapStaleLedgers(TEST_LEDGER_ROOT);
    const id = `c${randomBytes(3).toString('hex')}`;
    const ledger = ResourceLedger.create(join(TEST_LEDGER_ROOT, id));
    try {
      ledger.netns(`${id}-node`);
      const node = await createNetns(`${id}-node`);
      return new NetnsTestEnv(id, ledger, node);
    } catch (e) {
      await ledger.release();
      throw e;
    }
  }

  /** A new pod netns; returns its name and path. */
  async pod(): Promise<{ name: string; path: string }> {
    const name = `${this.id}-pod${++this.pods}`;
    this.ledger.netns(name);
    return { name, path: await createNetns(name) };
  }

  subdir(name: string): string {
    const d = join(this.dir, name);
    mkdirSync(d, { recursive: true });
    return d;
  }

  async close(): Promise<void> {
    await this.ledger.release();
  }
}

export function removeDir(dir: string | undefined): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

/** Source files reachable from `entry` by value imports (type-only imports are erased), and the packages they import. */
export function importGraph(entry: string): { files: string[]; packages: string[] } {
  const seen = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const m of readFileSync(file, 'utf8').matchAll(/^(?:import|export)\s+(?!type\b)[^;]*?from\s+'([^']+)'/gms)) {
      const spec = m[1]!;
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else packages.add(spec);
    }
  };
  visit(resolve(entry));
  return { files: [...seen], packages: [...packages].sort() };
}
