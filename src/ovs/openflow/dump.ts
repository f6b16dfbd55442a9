import { DEFAULT_PRIORITY } from './flow.js';

/**
 * Parsers for what ovs-ofctl prints: dump-flows, dump-groups, dump-group-stats, the offline
 * parse-flows / parse-group commands (used to get OVS's canonical spelling of a flow), and the error
 * report of a failed bundle. All take `--no-names` output (port numbers, never names).
 */

/** A flow as installed on the switch, with OVS's canonical spelling of match and actions. */
export interface InstalledFlow {
  table: number;
  priority: number;
  cookie: bigint;
  /** Canonical match without priority, e.g. `ip,nw_src=10.0.0.0/24` (empty: match all). */
  match: string;
  /** The match as field → value; shorthands such as `ip` map to true. */
  fields: Record<string, string | true>;
  /** Canonical action list, e.g. `set_field:0x5->reg1,output:2` (`drop` when empty). */
  actions: string;
  /** The action list split at top-level commas. */
  actionList: string[];
  nPackets: bigint;
  nBytes: bigint;
  /** Seconds since the flow was installed (millisecond precision). */
  durationSec: number;
  idleTimeout: number;
  hardTimeout: number;
  idleAge?: number;
  hardAge?: number;
  importance?: number;
  /** Flow flags such as send_flow_rem, reset_counts. */
  flags: string[];
}

export interface InstalledBucket {
  id: number;
  /** select groups only (1 when OVS printed none). */
  weight?: number;
  watchPort?: number;
  watchGroup?: number;
  actions: string;
}

export interface InstalledGroup {
  id: number;
  type: string;
  selectionMethod?: string;
  fields?: string[];
  buckets: InstalledBucket[];
  /** The canonical description as printed (`group_id=1,type=select,...`). */
  text: string;
}

export interface BucketStats {
  packets: bigint;
  bytes: bigint;
}

export interface GroupStats {
  id: number;
  durationSec: number;
  refCount: number;
  packets: bigint;
  bytes: bigint;
  buckets: BucketStats[];
}

/** Splits at `sep` outside parentheses and brackets (`ct(commit,nat(...)),output:1`). */
export function splitTopLevel(s: string, sep = ','): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '(' || c === '[') depth++;
    else if (c === ')' || c === ']') depth--;
    else if (c === sep && depth === 0) {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  }
  out.push(s.slice(start));
  return out.filter((p) => p !== '');
}

/** Splits OVS's printed match into priority and the rest. */
export function splitPriority(matchText: string): { priority: number; match: string } {
  const parts = splitTopLevel(matchText);
  let priority = DEFAULT_PRIORITY;
  if (parts[0]?.startsWith('priority=')) priority = Number(parts.shift()!.slice('priority='.length));
  return { priority, match: parts.join(',') };
}

export function matchFields(match: string): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  for (const p of splitTopLevel(match)) {
    const eq = p.indexOf('=');
    if (eq < 0) out[p] = true;
    else out[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return out;
}

const FLOW_FLAGS = new Set(['send_flow_rem', 'check_overlap', 'reset_counts', 'no_packet_counts', 'no_byte_counts']);

/** Parses one `dump-flows` line; undefined for headers and anything else that is not a flow. */
export function parseFlowLine(line: string): InstalledFlow | undefined {
  const l = line.trim();
  if (!l.startsWith('cookie=')) return undefined;
  const at = l.indexOf(' actions=');
  if (at < 0) return undefined;
  const head = l.slice(0, at);
  const actions = l.slice(at + ' actions='.length);
  // Stats are ", "-separated; the match follows the last ", " (nothing when the head ends with ",").
  const emptyMatch = head.endsWith(',');
  const tokens = (emptyMatch ? head.slice(0, -1) : head).split(', ');
  const matchText = emptyMatch ? '' : tokens.pop()!;
  const f: InstalledFlow = {
    table: 0,
    priority: DEFAULT_PRIORITY,
    cookie: 0n,
    match: '',
    fields: {},
    actions,
    actionList: splitTopLevel(actions),
    nPackets: 0n,
    nBytes: 0n,
    durationSec: 0,
    idleTimeout: 0,
    hardTimeout: 0,
    flags: [],
  };
  for (const tok of tokens) {
    // Flags and importance share one token: "send_flow_rem reset_counts importance=5".
    for (const word of tok.split(' ')) {
      const eq = word.indexOf('=');
      if (eq < 0) {
        if (FLOW_FLAGS.has(word)) f.flags.push(word);
        continue;
      }
      const k = word.slice(0, eq);
      const v = word.slice(eq + 1);
      switch (k) {
        case 'cookie':
          f.cookie = BigInt(v);
          break;
        case 'duration':
          f.durationSec = Number.parseFloat(v);
          break;
        case 'table':
          f.table = Number(v);
          break;
        case 'n_packets':
          f.nPackets = BigInt(v);
          break;
        case 'n_bytes':
          f.nBytes = BigInt(v);
          break;
        case 'idle_timeout':
          f.idleTimeout = Number(v);
          break;
        case 'hard_timeout':
          f.hardTimeout = Number(v);
          break;
        case 'idle_age':
          f.idleAge = Number(v);
          break;
        case 'hard_age':
          f.hardAge = Number(v);
          break;
        case 'importance':
          f.importance = Number(v);
          break;
      }
    }
  }
  const { priority, match } = splitPriority(matchText);
  f.priority = priority;
  f.match = match;
  f.fields = matchFields(match);
  return f;
}

export function parseDumpFlows(text: string): InstalledFlow[] {
  const out: InstalledFlow[] = [];
  for (const line of text.split('\n')) {
    const f = parseFlowLine(line);
    if (f) out.push(f);
  }
  return out;
}

function parseBucket(text: string): InstalledBucket {
  // text: "bucket_id:0,weight:10,watch_port:1,actions=output:1,..."
  const at = text.indexOf('actions=');
  const props = splitTopLevel(at < 0 ? text : text.slice(0, at));
  const b: InstalledBucket = { id: 0, actions: at < 0 ? '' : text.slice(at + 'actions='.length) };
  for (const p of props) {
    const [k, v] = p.split(':');
    const n = Number(v);
    if (k === 'bucket_id') b.id = n;
    else if (k === 'weight') b.weight = n;
    else if (k === 'watch_port') b.watchPort = n;
    else if (k === 'watch_group') b.watchGroup = n;
  }
  return b;
}

/** Parses one group description (`group_id=1,type=select,...,bucket=...,bucket=...`). */
export function parseGroupText(text: string): InstalledGroup {
  const t = text.trim();
  const parts = t.split(',bucket=');
  const head = splitTopLevel(parts.shift()!);
  const g: InstalledGroup = { id: -1, type: '', buckets: parts.map(parseBucket), text: t };
  for (const p of head) {
    if (p.startsWith('fields(')) {
      g.fields = splitTopLevel(p.slice('fields('.length, -1));
      continue;
    }
    const [k, v] = p.split('=');
    if (k === 'group_id') g.id = Number(v);
    else if (k === 'type') g.type = v!;
    else if (k === 'selection_method') g.selectionMethod = v;
  }
  // OVS omits the default weight of select buckets.
  if (g.type === 'select') for (const b of g.buckets) b.weight ??= 1;
  return g;
}

export function parseDumpGroups(text: string): InstalledGroup[] {
  return text
    .split('\n')
    .filter((l) => l.trim().startsWith('group_id='))
    .map(parseGroupText);
}

export function parseGroupStats(text: string): GroupStats[] {
  const out: GroupStats[] = [];
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (!l.startsWith('group_id=')) continue;
    const s: GroupStats = { id: -1, durationSec: 0, refCount: 0, packets: 0n, bytes: 0n, buckets: [] };
    let bucket: BucketStats | undefined;
    for (const tok of l.split(',')) {
      // Bucket counters read "bucket0:packet_count=1,byte_count=98".
      const m = /^bucket(\d+):(.*)$/.exec(tok);
      let kv = tok;
      if (m) {
        bucket = { packets: 0n, bytes: 0n };
        s.buckets[Number(m[1])] = bucket;
        kv = m[2]!;
      }
      const [k, v] = kv.split('=');
      if (k === 'group_id') s.id = Number(v);
      else if (k === 'duration') s.durationSec = Number.parseFloat(v!);
      else if (k === 'ref_count') s.refCount = Number(v);
      else if (k === 'packet_count') {
        if (bucket) bucket.packets = BigInt(v!);
        else s.packets = BigInt(v!);
      } else if (k === 'byte_count') {
        if (bucket) bucket.bytes = BigInt(v!);
        else s.bytes = BigInt(v!);
      }
    }
    out.push(s);
  }
  return out;
}

/** A flow as OVS spells it after parsing: canonical match (without priority) and actions. */
export interface CanonicalFlow {
  table: number;
  priority: number;
  match: string;
  actions: string;
}

/** Parses the body of a printed flow mod: `ADD table:3 priority=5,ip cookie:0x1 actions=drop`. */
export function parseFlowModBody(body: string): (CanonicalFlow & { command: string }) | undefined {
  const at = body.indexOf(' actions=');
  const head = (at < 0 ? body : body.slice(0, at)).trim().split(' ');
  const command = head.shift();
  if (!command) return undefined;
  let table = 0;
  const matchParts: string[] = [];
  for (const tok of head) {
    if (tok.startsWith('table:')) table = Number(tok.slice('table:'.length));
    else if (/^(cookie|idle|hard|importance|pri|out_port|out_group|buf|flags):/.test(tok) || FLOW_FLAGS.has(tok)) continue;
    else matchParts.push(tok);
  }
  const { priority, match } = splitPriority(matchParts.join(','));
  return { command, table, priority, match, actions: at < 0 ? '' : body.slice(at + ' actions='.length).trim() };
}

/** Parses `ovs-ofctl parse-flows` output: one canonical flow per OFPT_FLOW_MOD line, in input order. */
export function parseParsedFlows(text: string): CanonicalFlow[] {
  const out: CanonicalFlow[] = [];
  for (const line of text.split('\n')) {
    const m = /^OFPT_FLOW_MOD \([^)]*\) \(xid=0x[0-9a-f]+\): (.*)$/.exec(line);
    if (!m) continue;
    const f = parseFlowModBody(m[1]!);
    if (f) out.push({ table: f.table, priority: f.priority, match: f.match, actions: f.actions });
  }
  return out;
}

/** Parses `ovs-ofctl parse-group` output into the canonical group description. */
export function parseParsedGroup(text: string): string | undefined {
  const m = /OFPT_GROUP_MOD \([^)]*\) \(xid=0x[0-9a-f]+\):\s*\n?\s*[A-Z_]+ (group_id=.*)/.exec(text);
  return m?.[1]?.trim();
}

/** What a failed `ovs-ofctl bundle` said about the message that failed. */
export interface OfctlFailure {
  /** OpenFlow error code (`OFPBAC_BAD_OUT_GROUP`) or the parse error text. */
  reason: string;
  /** 1-based line of the input, for errors ovs-ofctl found while parsing. */
  inputLine?: number;
  /** For errors the switch reported: the failing message as OVS printed it. */
  kind?: 'flow' | 'group';
  /** Lower-case op as in a bundle file: add, modify, modify_strict, delete, delete_strict, add_or_mod. */
  op?: string;
  table?: number;
  priority?: number;
  match?: string;
  groupId?: number;
  xid?: number;
  /** The printed message. */
  message?: string;
}

const OPS: Record<string, string> = {
  ADD: 'add',
  MOD: 'modify',
  MOD_STRICT: 'modify_strict',
  DEL: 'delete',
  DEL_STRICT: 'delete_strict',
  ADD_OR_MOD: 'add_or_mod',
};

/** Reads ovs-ofctl's stderr after a failed bundle; undefined when it holds nothing recognisable. */
export function parseOfctlFailure(stderr: string): OfctlFailure | undefined {
  const parse = /ovs-ofctl: [^\n:]*:(\d+): ([^\n]*)/.exec(stderr);
  if (parse) return { reason: parse[2]!.trim(), inputLine: Number(parse[1]) };
  const re = /Error (\S+) for: (OFPT_[A-Z_]+) \([^)]*\) \(xid=(0x[0-9a-f]+)\):([^]*?)(?=\nError |\novs-ofctl: |$)/g;
  for (let m = re.exec(stderr); m; m = re.exec(stderr)) {
    const [, reason, type, xid, rest] = m;
    if (type === 'OFPT_BUNDLE_CONTROL') continue;
    const body = rest!.trim();
    const f: OfctlFailure = { reason: reason!, xid: Number(xid), message: body };
    if (type === 'OFPT_FLOW_MOD') {
      const fm = parseFlowModBody(body);
      f.kind = 'flow';
      if (fm) Object.assign(f, { op: OPS[fm.command] ?? fm.command.toLowerCase(), table: fm.table, priority: fm.priority, match: fm.match });
    } else if (type === 'OFPT_GROUP_MOD') {
      f.kind = 'group';
      const gm = /^([A-Z_]+) group_id=(\d+)/.exec(body);
      if (gm) Object.assign(f, { op: OPS[gm[1]!] ?? gm[1]!.toLowerCase(), groupId: Number(gm[2]) });
    }
    return f;
  }
  const other = /ovs-ofctl: ([^\n]*)/.exec(stderr);
  return other ? { reason: other[1]!.trim() } : undefined;
}
