import type { ErrorObject } from 'ajv';
import ipaddr from 'ipaddr.js';
import { CniCode, CniError } from '../errors.js';
import { brief } from '../values.js';
import type { CniResult, GcAttachment, NetConf, PluginConf, VersionResult } from '../types.js';
import * as compiled from './compiled.js';

/** Shape of an ajv standalone validator. */
interface Validator {
  (data: unknown): boolean;
  errors?: ErrorObject[] | null;
}

const v = compiled as unknown as Record<keyof typeof compiled, Validator>;

/** JSON pointer ("/plugins/0/ipam") to a readable path ("plugins[0].ipam"). */
export function readablePath(pointer: string, prefix = ''): string {
  let out = prefix;
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(seg)) out += `[${seg}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out || '(root)';
}

function problem(e: ErrorObject, prefix: string): string {
  const at = readablePath(e.instancePath, prefix);
  switch (e.keyword) {
    case 'required':
      return `${readablePath(`${e.instancePath}/${String((e.params as { missingProperty: string }).missingProperty).replace(/~/g, '~0').replace(/\//g, '~1')}`, prefix)}: is required`;
    case 'type':
      return `${at}: must be ${String((e.params as { type: string }).type)} (got ${brief(e.data)})`;
    case 'pattern':
      return `${at}: ${brief(e.data)} is not valid (must match ${(e.params as { pattern: string }).pattern})`;
    case 'enum':
      return `${at}: must be one of ${JSON.stringify((e.params as { allowedValues: unknown[] }).allowedValues)} (got ${brief(e.data)})`;
    default:
      return `${at}: ${e.message ?? e.keyword}`;
  }
}

/** Readable problems from a failed validation; the branches of a failed anyOf are merged into one. */
export function formatErrors(errors: readonly ErrorObject[], prefix = ''): string[] {
  const anyOfs = errors.filter((e) => e.keyword === 'anyOf');
  const out: string[] = [];
  for (const e of errors) {
    if (e.keyword === 'anyOf') {
      const branches = errors.filter((b) => b !== e && b.instancePath === e.instancePath && b.schemaPath.startsWith(`${e.schemaPath}/`));
      out.push(`${readablePath(e.instancePath, prefix)}: ${brief(e.data)} is not valid (${branches.map((b) => b.message).join(', or ')})`);
      continue;
    }
    if (anyOfs.some((a) => a.instancePath === e.instancePath && e.schemaPath.startsWith(`${a.schemaPath}/`))) continue;
    out.push(problem(e, prefix));
  }
  return [...new Set(out)];
}

function run(validator: Validator, value: unknown, prefix: string): string[] {
  return validator(value) ? [] : formatErrors(validator.errors ?? [], prefix);
}

function fail(code: number, msg: string, problems: string[]): never {
  throw new CniError(code, msg, problems.join('; '));
}

/**
 * Far deeper than any network configuration or result nests. Deeper documents are refused when decoded:
 * JSON.parse takes any depth, but copying or printing such a value later (structuredClone,
 * JSON.stringify, logging) overflows the stack.
 */
export const MAX_JSON_DEPTH = 64;

/** Whether arrays/objects in `value` nest more than `max` levels; iterative, so any depth is safe to ask. */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const todo: Array<[unknown, number]> = [[value, 0]];
  while (todo.length) {
    const [v, depth] = todo.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth + 1 > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (typeof child === 'object' && child !== null) todo.push([child, depth + 1]);
  }
  return false;
}

/** Parses JSON text; undecodable or too deeply nested input is code 6 naming what it was. */
export function parseJson(text: string, what: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (e) {
    throw new CniError(CniCode.DecodeFailure, `cannot decode ${what}`, (e as Error).message);
  }
  if (nestsDeeperThan(value, MAX_JSON_DEPTH)) throw new CniError(CniCode.DecodeFailure, `cannot decode ${what}`, `values nest deeper than ${MAX_JSON_DEPTH} levels`);
  return value;
}

function isIpv4(s: string): boolean {
  return ipaddr.IPv4.isValidFourPartDecimal(s);
}

function isIpv6(s: string): boolean {
  return s.includes(':') && ipaddr.IPv6.isValid(s);
}

/** 4 or 6 for a plain address in canonical notation (no IPv4 shorthands), else undefined. */
export function ipFamily(address: string): 4 | 6 | undefined {
  if (isIpv4(address)) return 4;
  if (isIpv6(address)) return 6;
  return undefined;
}

/** Family of an address/prefix string (host bits allowed, as in CNI results), else undefined. */
export function cidrFamily(cidr: string): 4 | 6 | undefined {
  const slash = cidr.lastIndexOf('/');
  if (slash < 0) return undefined;
  const fam = ipFamily(cidr.slice(0, slash));
  const len = cidr.slice(slash + 1);
  if (!fam || !/^\d{1,3}$/.test(len)) return undefined;
  return Number(len) <= (fam === 4 ? 32 : 128) ? fam : undefined;
}

/** Problems in a result beyond its schema: addresses, gateways and interface indexes. */
function resultSemantics(r: CniResult, prefix: string): string[] {
  const out: string[] = [];
  const p = (s: string) => (prefix ? `${prefix}.${s}` : s);
  (r.ips ?? []).forEach((ip, i) => {
    const fam = cidrFamily(ip.address);
    if (!fam) out.push(`${p(`ips[${i}].address`)}: ${JSON.stringify(ip.address)} is not an address/prefix`);
    else if (ip.version && ip.version !== String(fam)) out.push(`${p(`ips[${i}].version`)}: "${ip.version}" does not match ${ip.address}`);
    if (ip.gateway !== undefined && !ipFamily(ip.gateway)) out.push(`${p(`ips[${i}].gateway`)}: ${JSON.stringify(ip.gateway)} is not an IP address`);
    if (ip.interface !== undefined && ip.interface >= (r.interfaces?.length ?? 0)) {
      out.push(`${p(`ips[${i}].interface`)}: index ${ip.interface} is out of range (${r.interfaces?.length ?? 0} interfaces)`);
    }
  });
  (r.routes ?? []).forEach((rt, i) => {
    if (!cidrFamily(rt.dst)) out.push(`${p(`routes[${i}].dst`)}: ${JSON.stringify(rt.dst)} is not an address/prefix`);
    if (rt.gw !== undefined && !ipFamily(rt.gw)) out.push(`${p(`routes[${i}].gw`)}: ${JSON.stringify(rt.gw)} is not an IP address`);
  });
  return out;
}

/** Everything wrong with a result (schema, then addresses); empty when valid. */
export function resultProblems(value: unknown, prefix = ''): string[] {
  const problems = run(v.validateResult, value, prefix);
  return problems.length ? problems : resultSemantics(value as CniResult, prefix);
}

/** A result; `code`/`msg` say how a bad one is reported (7 inside a config, other codes from plugins). */
export function validateResult(value: unknown, code: number = CniCode.InvalidNetworkConfig, msg = 'invalid result'): CniResult {
  const problems = resultProblems(value);
  if (problems.length) fail(code, msg, problems);
  return value as CniResult;
}

/** A plugin's stdin configuration (generic part, including any prevResult); code 7 when invalid. */
export function validateNetConf(value: unknown): NetConf {
  let problems = run(v.validateNetConf, value, '');
  if (!problems.length && (value as NetConf).prevResult !== undefined) problems = resultSemantics((value as NetConf).prevResult!, 'prevResult');
  if (problems.length) fail(CniCode.InvalidNetworkConfig, 'invalid network configuration', problems);
  return value as NetConf;
}

/** One plugin entry of a conflist; `prefix` names it in messages (e.g. "plugins[1]"). */
export function validatePluginConf(value: unknown, prefix = ''): PluginConf {
  const problems = run(v.validatePluginConf, value, prefix);
  if (problems.length) fail(CniCode.InvalidNetworkConfig, 'invalid plugin configuration', problems);
  return value as PluginConf;
}

/** A conflist's generic structure (version selection is the loader's job); code 7 when invalid. */
export function conflistProblems(value: unknown): string[] {
  return run(v.validateConfList, value, '');
}

export function validateVersionResult(value: unknown): VersionResult {
  const problems = run(v.validateVersionResult, value, '');
  if (problems.length) fail(CniCode.DecodeFailure, 'invalid VERSION answer', problems);
  const r = value as { cniVersion: string; supportedVersions?: string[] };
  // Pre-0.2.0 plugins answer with their one version only.
  return { cniVersion: r.cniVersion, supportedVersions: r.supportedVersions ?? [r.cniVersion || '0.1.0'] };
}

/** GC's valid-attachment list from a config (libcni sends both the 1.1 key and its earlier spelling). */
export function gcAttachments(conf: NetConf): GcAttachment[] {
  const raw = conf['cni.dev/valid-attachments'] ?? (conf['cni.dev/attachments'] as GcAttachment[] | undefined) ?? [];
  return raw.map((a) => ({ containerID: a.containerID, ifname: a.ifname }));
}
