import { isObject } from './types.js';

// The JSONPath subset CRDs use in additionalPrinterColumns and selectableFields:
// `.a.b`, `.a[0]`, `.a[*].b`, `.a['x.y']`, and filters `.a[?(@.type=="Ready")].status`.

type Step =
  | { kind: 'field'; name: string }
  | { kind: 'index'; index: number }
  | { kind: 'all' }
  | { kind: 'filter'; path: string[]; op: '==' | '!='; value: string };

function parse(path: string): Step[] {
  let p = path.trim();
  if (p.startsWith('{') && p.endsWith('}')) p = p.slice(1, -1);
  if (p.startsWith('$')) p = p.slice(1);
  const steps: Step[] = [];
  let i = 0;
  while (i < p.length) {
    const c = p[i]!;
    if (c === '.') {
      let j = i + 1;
      let name = '';
      while (j < p.length && p[j] !== '.' && p[j] !== '[') {
        if (p[j] === '\\' && j + 1 < p.length) j++;
        name += p[j];
        j++;
      }
      if (name) steps.push({ kind: 'field', name });
      i = j;
    } else if (c === '[') {
      const end = p.indexOf(']', i);
      if (end < 0) throw new Error(`unterminated [ in ${path}`);
      const inner = p.slice(i + 1, end).trim();
      i = end + 1;
      if (inner === '*') steps.push({ kind: 'all' });
      else if (/^-?\d+$/.test(inner)) steps.push({ kind: 'index', index: Number(inner) });
      else if (/^'.*'$|^".*"$/.test(inner)) steps.push({ kind: 'field', name: inner.slice(1, -1) });
      else {
        const m = /^\?\(@((?:\.[A-Za-z0-9_-]+)+)\s*(==|!=)\s*(?:"([^"]*)"|'([^']*)'|([^)\s]+))\)$/.exec(inner);
        if (!m) throw new Error(`unsupported JSONPath element [${inner}]`);
        steps.push({ kind: 'filter', path: m[1]!.split('.').slice(1), op: m[2] as '==' | '!=', value: m[3] ?? m[4] ?? m[5] ?? '' });
      }
    } else {
      throw new Error(`unexpected '${c}' in JSONPath ${path}`);
    }
  }
  return steps;
}

function scalar(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** All values the path selects, in order. Throws on syntax kube would reject. */
export function evalJsonPath(obj: unknown, path: string): unknown[] {
  let cur: unknown[] = [obj];
  for (const step of parse(path)) {
    const next: unknown[] = [];
    for (const v of cur) {
      switch (step.kind) {
        case 'field':
          if (isObject(v) && v[step.name] !== undefined) next.push(v[step.name]);
          break;
        case 'index':
          if (Array.isArray(v)) {
            const x = v[step.index < 0 ? v.length + step.index : step.index];
            if (x !== undefined) next.push(x);
          }
          break;
        case 'all':
          if (Array.isArray(v)) next.push(...v);
          else if (isObject(v)) next.push(...Object.values(v));
          break;
        case 'filter':
          if (Array.isArray(v)) {
            for (const el of v) {
              let x: unknown = el;
              for (const f of step.path) x = isObject(x) ? x[f] : undefined;
              const eq = x !== undefined && scalar(x) === step.value;
              if (step.op === '==' ? eq : !eq) next.push(el);
            }
          }
          break;
      }
    }
    cur = next;
  }
  return cur;
}

export function validJsonPath(path: string): string | undefined {
  try {
    parse(path);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}
