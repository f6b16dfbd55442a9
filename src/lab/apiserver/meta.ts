import { randomInt } from 'node:crypto';
import { cause, type StatusCause } from './errors.js';
import { isObject, type KubeObject } from './types.js';

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

export type NameRule = 'subdomain' | 'label' | 'dns1035' | 'path';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/** Problems with an object name, as kube words them (empty when fine). */
export function validateName(name: string, rule: NameRule, field = 'metadata.name'): StatusCause[] {
  switch (rule) {
    case 'label':
      if (name.length > 63) return [cause.invalid(field, name, 'must be no more than 63 characters')];
      if (!DNS1123_LABEL.test(name)) {
        return [
          cause.invalid(
            field,
            name,
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
          ),
        ];
      }
      return [];
    case 'dns1035':
      if (name.length > 63) return [cause.invalid(field, name, 'must be no more than 63 characters')];
      if (!DNS1035_LABEL.test(name)) {
        return [
          cause.invalid(
            field,
            name,
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
          ),
        ];
      }
      return [];
    case 'path':
      if (name === '.' || name === '..') return [cause.invalid(field, name, `may not be '${name}'`)];
      if (/[/%]/.test(name)) return [cause.invalid(field, name, "may not contain '/' or '%'")];
      return [];
    case 'subdomain':
    default:
      if (name.length > 253) return [cause.invalid(field, name, 'must be no more than 253 characters')];
      if (!DNS1123_SUBDOMAIN.test(name)) {
        return [
          cause.invalid(
            field,
            name,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
          ),
        ];
      }
      return [];
  }
}

const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** A label or annotation key: optional DNS subdomain prefix, then a name of at most 63 characters. */
export function validateQualifiedName(key: string, field: string): StatusCause[] {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : '';
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (slash >= 0 && (prefix.length === 0 || prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix))) {
    return [cause.invalid(field, key, 'prefix part must be a lowercase RFC 1123 subdomain')];
  }
  if (name.length === 0 || name.length > 63 || !QUALIFIED_NAME.test(name)) {
    return [
      cause.invalid(
        field,
        key,
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with at most 63 characters",
      ),
    ];
  }
  return [];
}

/** A label value (also in label selectors): at most 63 characters, alphanumeric at both ends. */
export function validateLabelValue(v: string, field: string): StatusCause[] {
  if (v.length <= 63 && LABEL_VALUE.test(v)) return [];
  if (v.length > 63) return [cause.invalid(field, v, 'must be no more than 63 characters')];
  return [
    cause.invalid(
      field,
      v,
      "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
    ),
  ];
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
