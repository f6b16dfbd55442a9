import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { deleteNetns } from './netns.js';
import { run } from './exec.js';

/** A process identified by pid plus kernel start time, so a recycled pid is never mistaken for ours. */
export interface ProcessRef {
  pid: number;
  start: string;
  what: string;
}

export interface LedgerRecord {
  owner: ProcessRef;
  processes: ProcessRef[];
  pidfiles: string[];
  netns: string[];
  /** Links in the root namespace (veths to fabrics etc.). */
  rootLinks: string[];
  dirs: string[];
}

const LEDGER_FILE = 'ledger.json';

/**
 * Kernel start time of a process (field 22 of /proc/PID/stat), or undefined if it is gone. A zombie (exited,
 * waiting for its parent to reap it) counts as gone: it holds no resources and cannot be signalled away.
 */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces; fields after the closing paren are space separated.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z' || rest[0] === 'X') return undefined;
    return rest[19];
  } catch {
    return undefined;
  }
}

export function processRef(pid: number, what: string): ProcessRef {
  return { pid, start: processStart(pid) ?? '?', what };
}

export function isAlive(ref: ProcessRef): boolean {
  return processStart(ref.pid) === ref.start;
}

/** Sends SIGTERM, waits briefly, then SIGKILL; only if the pid still names the recorded process. */
export async function killProcess(ref: ProcessRef, graceMs = 2000): Promise<void> {
  if (!isAlive(ref)) return;
  try {
    process.kill(ref.pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isAlive(ref)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  if (isAlive(ref)) {
    try {
      process.kill(ref.pid, 'SIGKILL');
    } catch {
      return;
    }
    // SIGKILL is not instant on a loaded machine: wait (bounded) until it has really exited.
    const killDeadline = Date.now() + 5000;
    while (isAlive(ref) && Date.now() < killDeadline) await new Promise((r) => setTimeout(r, 25));
  }
}

function readPidfile(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    return Number.isFinite(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Records every resource a test or lab creates, on disk, as it is created, so that both a normal
 * teardown and a later run (after a crash) remove exactly those resources and nothing else.
 */
export class ResourceLedger {
  private constructor(
    readonly dir: string,
    private record: LedgerRecord,
  ) {}

  /** Opens a new ledger in `dir` (created), owned by this process. */
  static create(dir: string): ResourceLedger {
    mkdirSync(dir, { recursive: true });
    const ledger = new ResourceLedger(dir, {
      owner: processRef(process.pid, 'owner'),
      processes: [],
      pidfiles: [],
      netns: [],
      rootLinks: [],
      dirs: [],
    });
    ledger.save();
    return ledger;
  }

  /** Loads an existing ledger, or undefined when the directory holds none. */
  static load(dir: string): ResourceLedger | undefined {
    try {
      const rec = JSON.parse(readFileSync(join(dir, LEDGER_FILE), 'utf8')) as LedgerRecord;
      return new ResourceLedger(dir, rec);
    } catch {
      return undefined;
    }
  }

  get contents(): Readonly<LedgerRecord> {
    return this.record;
  }

  /** Whether the process that created this ledger is still running. */
  get ownerAlive(): boolean {
    return isAlive(this.record.owner);
  }

  /** Hands ownership to the current process (e.g. a CLI that brings up a lab then exits, and `down` later). */
  adopt(): void {
    this.record.owner = processRef(process.pid, 'owner');
    this.save();
  }

  private save(): void {
    writeFileSync(join(this.dir, LEDGER_FILE), JSON.stringify(this.record, null, 1));
  }

  private add<K extends 'pidfiles' | 'netns' | 'rootLinks' | 'dirs'>(key: K, value: string): void {
    if (!this.record[key].includes(value)) {
      this.record[key].push(value);
      this.save();
    }
  }

  private remove<K extends 'pidfiles' | 'netns' | 'rootLinks' | 'dirs'>(key: K, value: string): void {
    this.record[key] = this.record[key].filter((v) => v !== value) as LedgerRecord[K];
    this.save();
  }

  netns(name: string): void {
    this.add('netns', name);
  }
  forgetNetns(name: string): void {
    this.remove('netns', name);
  }
  rootLink(name: string): void {
    this.add('rootLinks', name);
  }
  pidfile(path: string): void {
    this.add('pidfiles', path);
  }
  directory(path: string): void {
    this.add('dirs', path);
  }

  process(pid: number, what: string): ProcessRef {
    const ref = processRef(pid, what);
    this.record.processes.push(ref);
    this.save();
    return ref;
  }

  forgetProcess(pid: number): void {
    this.record.processes = this.record.processes.filter((p) => p.pid !== pid);
    this.save();
  }

  /**
   * Removes everything recorded: processes (newest first), daemons named by pidfiles, root links,
   * namespaces, directories, then the ledger itself. Never touches anything it did not record.
   */
  async release(): Promise<void> {
    const rec = this.record;
    await Promise.all([...rec.processes].reverse().map((p) => killProcess(p)));
    for (const pf of rec.pidfiles) {
      const pid = readPidfile(pf);
      if (pid === undefined) continue;
      // The pidfile is ours; make sure the pid still belongs to a process that was started with it.
      let cmdline: string;
      try {
        cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        continue;
      }
      if (cmdline.includes(pf)) await killProcess(processRef(pid, pf));
    }
    for (const link of rec.rootLinks) {
      await run('ip', ['link', 'del', 'dev', link]).catch(() => undefined);
    }
    for (const ns of rec.netns) await deleteNetns(ns);
    for (const d of rec.dirs) rmSync(d, { recursive: true, force: true });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Releases every ledger under `root` whose owner is gone (left by a crashed run). Returns how many. */
export async function reapStaleLedgers(root: string): Promise<number> {
  if (!existsSync(root)) return 0;
  let reaped = 0;
  for (const entry of readdirSync(root)) {
    const ledger = ResourceLedger.load(join(root, entry));
    if (ledger && !ledger.ownerAlive) {
      await ledger.release();
      reaped++;
    }
  }
  return reaped;
}
