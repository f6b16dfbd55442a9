import { randomInt } from 'node:crypto';
import { validateLabelValue, validateQualifiedName } from '../../k8s/names.js';
import { cause, type StatusCause } from './errors.js';
import { isObject, type KubeObject } from './types.js';

export { validateLabelValue, validateName, validateQualifiedName, type NameRule } from '../../k8s/names.js';

/** RFC 3339 at second precision, as metav1.Time serialises. */
export function timestamp(at: number = Date.now()): string {
  return new Date(Math.floor(at / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

export function clone<T>(v: T): T {
  return structuredClone(v);
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => deepEqual(x, b[i]));
  }
  if (isObject(a)) {
    if (!isObject(b)) return false;
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    if (ka.length !== kb.length) return false;
    return ka.every((k) => deepEqual(a[k], b[k]));
  }
  return false;
}

// The alphabet kube uses for generated names: no vowels (no words), no look-alike digits.
const SUFFIX_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

export function randomSuffix(n = 5): string {
  let s = '';
  for (let i = 0; i < n; i++) s += SUFFIX_ALPHABET[randomInt(SUFFIX_ALPHABET.length)];
  return s;
}

/** generateName prefix plus a random suffix, the prefix cut so the result stays a legal name. */
export function generatedName(prefix: string): string {
  const max = 63 - 5;
  return (prefix.length > max ? prefix.slice(0, max) : prefix) + randomSuffix();
}

/** metadata checks every kind gets: labels, annotations, finalizers, owner references. */
export function validateObjectMeta(obj: KubeObject): StatusCause[] {
  const out: StatusCause[] = [];
  const m = obj.metadata;
  if (m.labels !== undefined) {
    if (!isObject(m.labels)) out.push(cause.invalid('metadata.labels', m.labels, 'must be a map of strings'));
    else {
      for (const [k, v] of Object.entries(m.labels)) {
        out.push(...validateQualifiedName(k, 'metadata.labels'));
        if (typeof v !== 'string') out.push(cause.invalid(`metadata.labels`, v, 'label values must be strings'));
        else out.push(...validateLabelValue(v, 'metadata.labels'));
      }
    }
  }
  if (m.annotations !== undefined) {
    if (!isObject(m.annotations)) out.push(cause.invalid('metadata.annotations', m.annotations, 'must be a map of strings'));
    else {
      let size = 0;
      for (const [k, v] of Object.entries(m.annotations)) {
        out.push(...validateQualifiedName(k.toLowerCase(), 'metadata.annotations'));
        if (typeof v !== 'string') out.push(cause.invalid('metadata.annotations', v, 'annotation values must be strings'));
        else size += k.length + v.length;
      }
      if (size > 256 * 1024) out.push(cause.tooLong('metadata.annotations', 256 * 1024));
    }
  }
  if (m.finalizers !== undefined) {
    if (!Array.isArray(m.finalizers)) out.push(cause.invalid('metadata.finalizers', m.finalizers, 'must be a list of strings'));
    else
      m.finalizers.forEach((f, i) => {
        if (typeof f !== 'string') out.push(cause.invalid(`metadata.finalizers[${i}]`, f, 'must be a string'));
        else out.push(...validateQualifiedName(f, `metadata.finalizers[${i}]`));
      });
  }
  if (m.ownerReferences !== undefined) {
    if (!Array.isArray(m.ownerReferences)) out.push(cause.invalid('metadata.ownerReferences', m.ownerReferences, 'must be a list'));
    else
      m.ownerReferences.forEach((r, i) => {
        for (const f of ['apiVersion', 'kind', 'name', 'uid'] as const) {
          if (!isObject(r) || typeof r[f] !== 'string' || r[f] === '') out.push(cause.required(`metadata.ownerReferences[${i}].${f}`));
        }
      });
  }
  return out;
}

/** Age as kubectl prints it (2m30s, 5h, 3d4h ...): kube's HumanDuration thresholds. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) return hours % 24 === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${hours % 24}h`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 365 * 8) return days % 365 === 0 ? `${Math.floor(days / 365)}y` : `${Math.floor(days / 365)}y${days % 365}d`;
  return `${Math.floor(days / 365)}y`;
}

export function ageOf(ts: string | undefined, now = Date.now()): string {
  if (!ts) return '<unknown>';
  const t = Date.parse(ts);
  return Number.isNaN(t) ? '<unknown>' : humanDuration(now - t);
}
