import { errors } from './errors.js';

// Label selectors in kube's string syntax: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`,
// `!a`, and the numeric `a>1` / `a<1`; comma separated, all must hold.

export type LabelRequirement =
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | '!exists' }
  | { key: string; op: 'gt' | 'lt'; value: number };

export interface LabelSelector {
  requirements: LabelRequirement[];
  matches(labels: Record<string, string> | undefined): boolean;
  /** Exact values a key must have (from `=`/`==`/single-value `in`), to narrow searches. */
  exact(key: string): string | undefined;
}

const SPECIAL = new Set([',', '=', '!', '(', ')', '<', '>', ' ', '\t', '\n', '\r']);

type Tok = { kind: 'id' | 'op'; text: string };

function lexLabels(s: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
    } else if (c === '=' && s[i + 1] === '=') {
      out.push({ kind: 'op', text: '==' });
      i += 2;
    } else if (c === '!' && s[i + 1] === '=') {
      out.push({ kind: 'op', text: '!=' });
      i += 2;
    } else if (SPECIAL.has(c)) {
      out.push({ kind: 'op', text: c });
      i++;
    } else {
      let j = i;
      while (j < s.length && !SPECIAL.has(s[j]!)) j++;
      out.push({ kind: 'id', text: s.slice(i, j) });
      i = j;
    }
  }
  return out;
}

function selectorError(sel: string, why: string): Error {
  return errors.badRequest(`unable to parse requirement: ${why} (selector "${sel}")`);
}

export function parseLabelSelector(sel: string | undefined): LabelSelector {
  const requirements: LabelRequirement[] = [];
  const toks = lexLabels(sel ?? '');
  let p = 0;
  const peek = (): Tok | undefined => toks[p];
  const next = (): Tok | undefined => toks[p++];
  const expectId = (what: string): string => {
    const t = next();
    if (!t || t.kind !== 'id') throw selectorError(sel ?? '', `expected ${what}, found ${t ? `'${t.text}'` : 'end of string'}`);
    return t.text;
  };
  while (p < toks.length) {
    let t = next()!;
    if (t.kind === 'op' && t.text === '!') {
      requirements.push({ key: expectId('key'), op: '!exists' });
    } else if (t.kind === 'id') {
      const key = t.text;
      const op = peek();
      if (!op || (op.kind === 'op' && op.text === ',')) {
        requirements.push({ key, op: 'exists' });
      } else if (op.kind === 'op' && (op.text === '=' || op.text === '==' || op.text === '!=')) {
        p++;
        const v = peek();
        let value = '';
        if (v && v.kind === 'id') {
          value = v.text;
          p++;
        }
        requirements.push({ key, op: op.text === '!=' ? 'notin' : 'in', values: [value] });
      } else if (op.kind === 'op' && (op.text === '>' || op.text === '<')) {
        p++;
        const raw = expectId('number');
        const value = Number(raw);
        if (!/^-?\d+$/.test(raw)) throw selectorError(sel ?? '', `for 'Gt', 'Lt' operators, the value must be an integer`);
        requirements.push({ key, op: op.text === '>' ? 'gt' : 'lt', value });
      } else if (op.kind === 'id' && (op.text === 'in' || op.text === 'notin')) {
        p++;
        t = next() ?? { kind: 'op', text: '' };
        if (t.text !== '(') throw selectorError(sel ?? '', `expected '(' after '${op.text}'`);
        const values: string[] = [];
        for (;;) {
          const v = next();
          if (!v) throw selectorError(sel ?? '', "expected ')'");
          if (v.kind === 'op' && v.text === ')') break;
          if (v.kind === 'op' && v.text === ',') continue;
          if (v.kind !== 'id') throw selectorError(sel ?? '', `unexpected '${v.text}' in value list`);
          values.push(v.text);
        }
        requirements.push({ key, op: op.text, values });
      } else {
        throw selectorError(sel ?? '', `unexpected '${op.text}' after key '${key}'`);
      }
    } else if (t.kind === 'op' && t.text === ',') {
      continue;
    } else {
      throw selectorError(sel ?? '', `found '${t.text}', expected: !, identifier, or 'end of string'`);
    }
    const sep = peek();
    if (sep && !(sep.kind === 'op' && sep.text === ',')) throw selectorError(sel ?? '', `found '${sep.text}', expected: ',' or 'end of string'`);
  }
  return {
    requirements,
    matches(labels) {
      const l = labels ?? {};
      return requirements.every((r) => {
        const has = Object.prototype.hasOwnProperty.call(l, r.key);
        const v = l[r.key];
        switch (r.op) {
          case 'exists':
            return has;
          case '!exists':
            return !has;
          case 'in':
            return has && r.values.includes(v!);
          case 'notin':
            return !has || !r.values.includes(v!);
          case 'gt':
          case 'lt': {
            if (!has || !/^-?\d+$/.test(v!)) return false;
            return r.op === 'gt' ? Number(v) > r.value : Number(v) < r.value;
          }
        }
      });
    },
    exact(key) {
      const r = requirements.find((x) => x.key === key && x.op === 'in' && x.values.length === 1);
      return r && r.op === 'in' ? r.values[0] : undefined;
    },
  };
}

// Field selectors: `f=v`, `f==v`, `f!=v`, comma separated; `\` escapes `,`, `=` and `\` in values.

export interface FieldRequirement {
  field: string;
  op: '=' | '!=';
  value: string;
}

export interface FieldSelector {
  requirements: FieldRequirement[];
  matches(fields: Record<string, string | undefined>): boolean;
  exact(field: string): string | undefined;
}

function splitUnescaped(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && i + 1 < s.length) {
      cur += c + s[i + 1];
      i++;
    } else if (c === sep) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

function unescapeValue(v: string): string {
  return v.replace(/\\(.)/g, '$1');
}

export function parseFieldSelector(sel: string | undefined): FieldSelector {
  const requirements: FieldRequirement[] = [];
  for (const term of sel ? splitUnescaped(sel, ',') : []) {
    if (term.trim() === '') continue;
    let idx = -1;
    let opLen = 0;
    let op: '=' | '!=' = '=';
    for (let i = 0; i < term.length; i++) {
      if (term[i] === '\\') {
        i++;
        continue;
      }
      if (term[i] === '!' && term[i + 1] === '=') {
        idx = i;
        opLen = 2;
        op = '!=';
        break;
      }
      if (term[i] === '=') {
        idx = i;
        opLen = term[i + 1] === '=' ? 2 : 1;
        break;
      }
    }
    if (idx < 0) throw errors.badRequest(`invalid field selector: '${term}' is not a field selector term`);
    requirements.push({ field: term.slice(0, idx).trim(), op, value: unescapeValue(term.slice(idx + opLen).trim()) });
  }
  return {
    requirements,
    matches(fields) {
      return requirements.every((r) => {
        const v = fields[r.field] ?? '';
        return r.op === '=' ? v === r.value : v !== r.value;
      });
    },
    exact(field) {
      return requirements.find((r) => r.field === field && r.op === '=')?.value;
    },
  };
}
