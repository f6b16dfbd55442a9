import ipaddr from 'ipaddr.js';
import { checkToken, checkUint, renderIp, renderMac } from './match.js';

/**
 * Output port: an OpenFlow port number, a reserved port, or a field holding the port (`reg1[0..15]`). CONTROLLER
 * sends the whole packet to the controller; TABLE (packet-out only) runs the packet through the pipeline.
 */
export type Port = number | 'IN_PORT' | 'LOCAL' | 'NORMAL' | 'FLOOD' | 'ALL' | 'CONTROLLER' | 'TABLE' | { field: string };

export interface Nat {
  /** Omitted: plain `nat`, which un-NATs replies of a connection committed with NAT. */
  type?: 'src' | 'dst';
  /** An address, or a [first, last] range. */
  addr?: string | [string, string];
  port?: number | [number, number];
  flags?: ('random' | 'hash' | 'persistent')[];
}

/** A constant in a learn spec. */
export interface LearnValue {
  value: number | bigint;
}

/**
 * One spec of a learn action: a match field of the flow it adds (its value taken from the same field of the
 * packet, from another field, or a constant), or a load that flow does (from a field of the packet, or a
 * constant). Fields are written as subfields: `NXM_OF_ETH_DST[]`, `NXM_NX_REG1[0..15]`, `eth_type`.
 */
export type LearnSpec = { match: string; from?: string | LearnValue } | { load: string; from: string | LearnValue };

export interface Learn {
  type: 'learn';
  /** Table the learned flow goes to. */
  table: number;
  idleTimeout?: number;
  hardTimeout?: number;
  priority?: number;
  cookie?: bigint;
  /** Learned flows go when this flow goes. */
  deleteLearned?: boolean;
  specs: LearnSpec[];
}

/**
 * One action in a flow's action list, as in ovs-actions(7). A flow with no actions drops. Some
 * entries render to several OVS actions (push_vlan with a VID), some are spelled for clarity
 * (set_tunnel_dst); `raw` is the escape hatch.
 */
export type Action =
  | { type: 'output'; port: Port }
  | { type: 'drop' }
  | { type: 'goto_table'; table: number }
  | { type: 'resubmit'; table?: number; port?: number | 'IN_PORT' }
  /** Writes a constant into a field or subfield (`reg0[0..15]`, `NXM_NX_REG1[]`, `eth_dst`). */
  | { type: 'load'; value: number | bigint; dst: string }
  | { type: 'set_field'; field: string; value: string | number | bigint; mask?: number | bigint }
  | { type: 'move'; src: string; dst: string }
  | { type: 'mod_dl_src'; mac: string }
  | { type: 'mod_dl_dst'; mac: string }
  | { type: 'dec_ttl' }
  | {
      type: 'ct';
      commit?: boolean;
      force?: boolean;
      /** A zone number, or a 16-bit subfield holding it. */
      zone?: number | string;
      /** Recirculate the packet into this table after conntrack. */
      table?: number;
      nat?: Nat | true;
      /** Actions run on the connection (set_field of ct_mark / ct_label). */
      exec?: Action[];
      alg?: 'ftp' | 'tftp';
    }
  | { type: 'ct_clear' }
  /** Clause `clause` (1-based) of `clauses` in conjunction `id`. */
  | { type: 'conjunction'; id: number; clause: number; clauses: number }
  | { type: 'group'; id: number }
  | { type: 'set_tunnel_dst'; ip: string }
  | { type: 'set_tunnel_id'; id: number | bigint }
  /** Pushes a VLAN header (ethertype 0x8100 unless given) and sets its VID and PCP when given. */
  | { type: 'push_vlan'; ethertype?: number; vid?: number; pcp?: number }
  | { type: 'pop_vlan' }
  /** Annotation carried in the flow: text (UTF-8) or hex bytes. */
  | { type: 'note'; text: string }
  | Learn
  | { type: 'raw'; text: string };

const RESERVED_PORTS: ReadonlySet<string> = new Set(['IN_PORT', 'LOCAL', 'NORMAL', 'FLOOD', 'ALL', 'CONTROLLER', 'TABLE']);
const SUBFIELD = /^[A-Za-z_][A-Za-z0-9_]*(\[(\d+(\.\.\d+)?)?\])?$/;

/** A field or subfield reference; a bare field name means the whole field (`reg0` → `reg0[]`). */
export function subfield(what: string, s: string): string {
  if (!SUBFIELD.test(s)) throw new RangeError(`${what}: bad field reference ${s}`);
  return s.includes('[') ? s : `${s}[]`;
}

function u(field: string, v: number | bigint, bits: number): string {
  return checkUint(field, v, bits).toString();
}

function renderPort(p: Port): string {
  if (typeof p === 'object') return `output:${subfield('output', p.field)}`;
  if (typeof p === 'string') {
    if (!RESERVED_PORTS.has(p)) throw new RangeError(`output: unknown reserved port ${p}`);
    return p;
  }
  return `output:${u('output', p, 32)}`;
}

function natAddr(a: string): string {
  if (ipaddr.IPv4.isValidFourPartDecimal(a)) return a;
  if (ipaddr.IPv6.isValid(a)) return `[${a}]`;
  throw new RangeError(`nat: bad address ${a}`);
}

function renderNat(n: Nat | true): string {
  if (n === true || n.type === undefined) {
    if (n !== true && (n.addr !== undefined || n.port !== undefined)) throw new RangeError('nat: addresses or ports need type src or dst');
    return 'nat';
  }
  let spec = '';
  if (n.addr !== undefined) {
    const [a, b] = typeof n.addr === 'string' ? [n.addr] : n.addr;
    spec = natAddr(a!) + (b !== undefined ? `-${natAddr(b)}` : '');
  }
  if (n.port !== undefined) {
    if (!spec) throw new RangeError('nat: a port range needs an address');
    const [a, b] = typeof n.port === 'number' ? [n.port] : n.port;
    spec += `:${u('nat port', a!, 16)}${b !== undefined ? `-${u('nat port', b, 16)}` : ''}`;
  }
  const parts = [spec ? `${n.type}=${spec}` : n.type, ...(n.flags ?? [])];
  return `nat(${parts.join(',')})`;
}

function noteHex(text: string): string {
  return [...Buffer.from(text, 'utf8')].map((b) => b.toString(16).padStart(2, '0')).join('.');
}

function setFieldValue(field: string, v: string | number | bigint): string {
  if (typeof v === 'string') return checkToken(`set_field ${field}`, v);
  return `0x${checkUint(`set_field ${field}`, v, 128).toString(16)}`;
}

/** A learn spec's field, as written (a bare name is the whole field, as in ovs-ofctl's learn syntax). */
function learnField(ref: string): string {
  if (!SUBFIELD.test(ref)) throw new RangeError(`learn: bad field reference ${ref}`);
  return ref;
}

function learnSource(from: string | LearnValue): string {
  return typeof from === 'string' ? learnField(from) : `0x${checkUint('learn value', from.value, 128).toString(16)}`;
}

function renderLearn(a: Learn): string {
  if (!a.specs.length) throw new RangeError('learn: no specs');
  const parts = [`table=${u('learn table', a.table, 8)}`];
  if (a.idleTimeout !== undefined) parts.push(`idle_timeout=${u('learn idle_timeout', a.idleTimeout, 16)}`);
  if (a.hardTimeout !== undefined) parts.push(`hard_timeout=${u('learn hard_timeout', a.hardTimeout, 16)}`);
  if (a.priority !== undefined) parts.push(`priority=${u('learn priority', a.priority, 16)}`);
  if (a.deleteLearned) parts.push('delete_learned');
  if (a.cookie !== undefined) parts.push(`cookie=0x${checkUint('learn cookie', a.cookie, 64).toString(16)}`);
  for (const spec of a.specs) {
    if ('match' in spec) parts.push(spec.from === undefined ? learnField(spec.match) : `${learnField(spec.match)}=${learnSource(spec.from)}`);
    else parts.push(`load:${learnSource(spec.from)}->${learnField(spec.load)}`);
  }
  return `learn(${parts.join(',')})`;
}

function renderOne(a: Action): string {
  switch (a.type) {
    case 'output':
      return renderPort(a.port);
    case 'drop':
      return 'drop';
    case 'goto_table':
      return `goto_table:${u('goto_table', a.table, 8)}`;
    case 'resubmit': {
      const port = a.port === undefined ? '' : a.port === 'IN_PORT' ? 'IN_PORT' : u('resubmit port', a.port, 32);
      const table = a.table === undefined ? '' : u('resubmit table', a.table, 8);
      if (!port && !table) throw new RangeError('resubmit: needs a port or a table');
      return `resubmit(${port},${table})`;
    }
    case 'load':
      return `load:0x${checkUint('load', a.value, 128).toString(16)}->${subfield('load', a.dst)}`;
    case 'set_field': {
      checkToken('set_field field', a.field);
      const mask = a.mask === undefined ? '' : `/0x${checkUint(`set_field ${a.field} mask`, a.mask, 128).toString(16)}`;
      return `set_field:${setFieldValue(a.field, a.value)}${mask}->${a.field}`;
    }
    case 'move':
      return `move:${subfield('move', a.src)}->${subfield('move', a.dst)}`;
    case 'mod_dl_src':
      return `mod_dl_src:${renderMac('mod_dl_src', a.mac)}`;
    case 'mod_dl_dst':
      return `mod_dl_dst:${renderMac('mod_dl_dst', a.mac)}`;
    case 'dec_ttl':
      return 'dec_ttl';
    case 'ct': {
      const parts: string[] = [];
      if (a.commit) parts.push('commit');
      if (a.force) parts.push('force');
      if (a.table !== undefined) parts.push(`table=${u('ct table', a.table, 8)}`);
      if (a.zone !== undefined) parts.push(`zone=${typeof a.zone === 'number' ? u('ct zone', a.zone, 16) : subfield('ct zone', a.zone)}`);
      if (a.nat !== undefined) parts.push(renderNat(a.nat));
      if (a.exec?.length) parts.push(`exec(${a.exec.map(renderOne).join(',')})`);
      if (a.alg) parts.push(`alg=${a.alg}`);
      return parts.length ? `ct(${parts.join(',')})` : 'ct';
    }
    case 'ct_clear':
      return 'ct_clear';
    case 'conjunction': {
      if (a.clauses < 2 || a.clauses > 64 || a.clause < 1 || a.clause > a.clauses) {
        throw new RangeError(`conjunction: clause ${a.clause}/${a.clauses} invalid (need 1 <= k <= n, 2 <= n <= 64)`);
      }
      return `conjunction(${u('conjunction id', a.id, 32)},${a.clause}/${a.clauses})`;
    }
    case 'group':
      return `group:${u('group', a.id, 32)}`;
    case 'set_tunnel_dst':
      return `set_field:${renderIp('tun_dst', a.ip, 4)}->tun_dst`;
    case 'set_tunnel_id':
      return `set_field:0x${checkUint('tun_id', a.id, 64).toString(16)}->tun_id`;
    case 'push_vlan': {
      const out = [`push_vlan:0x${checkUint('push_vlan', a.ethertype ?? 0x8100, 16).toString(16)}`];
      // vlan_vid in OpenFlow carries the "VID present" bit 0x1000.
      if (a.vid !== undefined) out.push(`set_field:${Number(checkUint('vlan vid', a.vid, 12)) | 0x1000}->vlan_vid`);
      if (a.pcp !== undefined) out.push(`set_field:${u('vlan pcp', a.pcp, 3)}->vlan_pcp`);
      return out.join(',');
    }
    case 'pop_vlan':
      return 'pop_vlan';
    case 'note':
      if (!a.text) throw new RangeError('note: empty');
      return `note:${noteHex(a.text)}`;
    case 'learn':
      return renderLearn(a);
    case 'raw':
      if (!a.text.trim() || /[\s#\p{Cc}]/u.test(a.text)) throw new RangeError(`raw action: "${a.text}" is empty or contains whitespace, '#' or control characters`);
      return a.text;
  }
}

/**
 * Renders an action list in ovs-ofctl syntax (`drop` when empty). goto_table must come last, as
 * OpenFlow 1.1+ orders the apply-actions instruction before goto_table.
 */
export function renderActions(actions: readonly Action[]): string {
  if (!actions.length) return 'drop';
  actions.forEach((a, i) => {
    if (a.type === 'drop' && actions.length > 1) throw new RangeError('drop cannot be combined with other actions');
    if (a.type === 'goto_table' && i !== actions.length - 1) throw new RangeError('goto_table must be the last action');
  });
  return actions.map(renderOne).join(',');
}
