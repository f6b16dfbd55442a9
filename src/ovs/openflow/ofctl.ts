import { CommandError, run, type RunOptions, type RunResult } from '../../host/exec.js';
import { parseParsedFlows, parseParsedGroup, type CanonicalFlow } from './dump.js';

/** How ovs-ofctl is started; tests and the benchmark wrap it to count spawns. */
export type Exec = (cmd: string, args: readonly string[], opts?: RunOptions) => Promise<RunResult>;

export interface OfctlOptions {
  /** Environment for ovs-ofctl (e.g. OvsDaemons.env). */
  env?: NodeJS.ProcessEnv;
  exec?: Exec;
  timeoutMs?: number;
}

// Every command speaks OpenFlow 1.5 and prints port numbers, never names: names cannot be
// compared offline and depend on the switch's port table.
const BASE_ARGS = ['-O', 'OpenFlow15', '--no-names'];

/** ovs-ofctl bound to one switch target (e.g. `unix:RUNDIR/br0.mgmt`). Counts the processes it spawns. */
export class Ofctl {
  spawns = 0;
  private readonly exec: Exec;
  private readonly env?: NodeJS.ProcessEnv;
  private readonly timeoutMs: number;

  constructor(
    readonly target: string,
    opts: OfctlOptions = {},
  ) {
    this.exec = opts.exec ?? run;
    this.env = opts.env;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  async run(args: string[], input?: string): Promise<string> {
    this.spawns++;
    const { stdout } = await this.exec('ovs-ofctl', [...BASE_ARGS, ...args], { env: this.env, input, timeoutMs: this.timeoutMs });
    return stdout;
  }

  /** Applies `flow ...` / `group ...` lines as one atomic, ordered bundle. */
  async bundle(lines: readonly string[]): Promise<void> {
    if (!lines.length) return;
    await this.run(['bundle', this.target, '-'], lines.join('\n') + '\n');
  }

  dumpFlows(filter?: string): Promise<string> {
    return this.run(['dump-flows', this.target, ...(filter ? [filter] : [])]);
  }

  dumpGroups(groupId?: number): Promise<string> {
    return this.run(['dump-groups', this.target, ...(groupId !== undefined ? [String(groupId)] : [])]);
  }

  // dump-groups takes a bare id, dump-group-stats `group_id=ID`.
  dumpGroupStats(groupId?: number): Promise<string> {
    return this.run(['dump-group-stats', this.target, ...(groupId !== undefined ? [`group_id=${groupId}`] : [])]);
  }

  /** OVS's canonical spelling of flows (`table=..,priority=..,MATCH,actions=..` lines), offline. */
  async parseFlows(lines: readonly string[]): Promise<CanonicalFlow[]> {
    if (!lines.length) return [];
    let stdout: string;
    try {
      stdout = await this.run(['parse-flows', '-'], lines.join('\n') + '\n');
    } catch (e) {
      if (!(e instanceof CommandError)) throw e;
      const bad = await this.findRefused(lines);
      if (bad) throw new RangeError(`OVS refuses flow "${lines[bad.index]}": ${bad.reason}`, { cause: e });
      throw e;
    }
    const out = parseParsedFlows(stdout);
    if (out.length !== lines.length) throw new Error(`ovs-ofctl parse-flows printed ${out.length} flows for ${lines.length}`);
    return out;
  }

  /**
   * Which of these flows (`table=..,...,actions=..`) ovs-ofctl refuses to parse, and why. Some
   * refusals name no line ("no usable protocol"), so this bisects: O(log n) spawns, error paths only.
   */
  async findRefused(flows: readonly string[]): Promise<{ index: number; reason: string } | undefined> {
    const refusal = async (part: readonly string[]): Promise<string | undefined> => {
      try {
        await this.run(['parse-flows', '-'], part.join('\n') + '\n');
        return undefined;
      } catch (e) {
        if (!(e instanceof CommandError)) throw e;
        return e.stderr.trim() || e.message;
      }
    };
    const reasonOf = (stderr: string): { line?: number; reason: string } => {
      const m = /ovs-ofctl: -:(\d+): ([^\n]*)/.exec(stderr);
      return m ? { line: Number(m[1]), reason: m[2]! } : { reason: stderr.replace(/^ovs-ofctl: /, '') };
    };
    let lo = 0;
    let hi = flows.length;
    let why = await refusal(flows);
    while (why !== undefined) {
      const r = reasonOf(why);
      if (r.line !== undefined) return { index: lo + r.line - 1, reason: r.reason };
      if (hi - lo === 1) return { index: lo, reason: r.reason };
      const mid = (lo + hi) >> 1;
      const first = await refusal(flows.slice(lo, mid));
      if (first !== undefined) {
        hi = mid;
        why = first;
      } else {
        lo = mid;
        why = await refusal(flows.slice(lo, hi));
      }
    }
    return undefined;
  }

  /** OVS's canonical spelling of one group description, offline. */
  async parseGroup(text: string): Promise<string> {
    const out = parseParsedGroup(await this.run(['parse-group', text]));
    if (out === undefined) throw new Error(`ovs-ofctl parse-group printed no group for ${text}`);
    return out;
  }
}

/**
 * Canonical forms depend only on the OVS version, so they are memoised process-wide: a periodic
 * sync of an unchanged desired state then costs no parse spawn at all.
 */
class Lru<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly limit: number) {}
  get(k: string): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  set(k: string, v: V): void {
    this.map.delete(k);
    this.map.set(k, v);
    if (this.map.size > this.limit) this.map.delete(this.map.keys().next().value!);
  }
}

const flowCanon = new Lru<CanonicalFlow>(100_000);
const groupCanon = new Lru<string>(10_000);

/** Canonical forms of `table=..,priority=..,MATCH,actions=..` lines, from cache or one parse-flows spawn. */
export async function canonicalFlows(ofctl: Ofctl, lines: readonly string[]): Promise<CanonicalFlow[]> {
  const out: (CanonicalFlow | undefined)[] = lines.map((l) => flowCanon.get(l));
  const missing = [...new Set(lines.filter((_, i) => out[i] === undefined))];
  if (missing.length) {
    const parsed = await ofctl.parseFlows(missing);
    const fresh = new Map(missing.map((l, i) => [l, parsed[i]!]));
    fresh.forEach((c, l) => flowCanon.set(l, c));
    lines.forEach((l, i) => (out[i] ??= fresh.get(l)));
  }
  return out as CanonicalFlow[];
}

/**
 * ovs-ofctl reads a group from one argument: the kernel refuses an argument above 128 KiB (a select group with
 * thousands of buckets), and a process per group does not pay for a thousand groups. Past these, a group is not
 * compared and counts as changed: rewriting it in the bundle costs less, and changes no connection.
 */
const MAX_GROUP_TEXT = 100 * 1024;
const MAX_GROUP_PARSES = 64;
/** Never the text of an installed group: the group is rewritten. */
export const UNCOMPARED_GROUP = '';

/** Canonical group descriptions, from cache or one parse-group spawn per group (a few at a time). */
export async function canonicalGroups(ofctl: Ofctl, texts: readonly string[]): Promise<string[]> {
  const found = new Map<string, string>();
  for (const t of texts) {
    const c = groupCanon.get(t);
    if (c !== undefined) found.set(t, c);
  }
  const missing = [...new Set(texts.filter((t) => !found.has(t)))];
  const parsed = missing.filter((t) => t.length <= MAX_GROUP_TEXT).slice(0, MAX_GROUP_PARSES);
  for (let i = 0; i < parsed.length; i += 4) {
    const chunk = parsed.slice(i, i + 4);
    const canon = await Promise.all(chunk.map((t) => ofctl.parseGroup(t)));
    chunk.forEach((t, j) => {
      groupCanon.set(t, canon[j]!);
      found.set(t, canon[j]!);
    });
  }
  return texts.map((t) => found.get(t) ?? UNCOMPARED_GROUP);
}
