import { CniCode, CniError } from './errors.js';

/** Every released CNI spec version, oldest first. */
export const SPEC_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;

/** The newest spec version Seine implements. */
export const CURRENT_VERSION = '1.1.0';

/**
 * Versions whose results Seine can read, write and convert between. 0.1.0/0.2.0 (the ip4/ip6 result
 * shape, no chaining) are refused with code 1.
 */
export const SUPPORTED_VERSIONS: readonly string[] = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];

const VERSION_RE = /^(\d+)\.(\d+)\.(\d+)$/;

/** [major, minor, patch]; throws code 1 for a string that is not a dotted triple. */
export function parseVersion(v: string): [number, number, number] {
  const m = VERSION_RE.exec(v);
  if (!m) throw new CniError(CniCode.IncompatibleVersion, 'invalid CNI version', JSON.stringify(v));
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

export function compareVersions(a: string, b: string): -1 | 0 | 1 {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  for (let i = 0; i < 3; i++) {
    if (pa[i]! < pb[i]!) return -1;
    if (pa[i]! > pb[i]!) return 1;
  }
  return 0;
}

export function versionAtLeast(v: string, min: string): boolean {
  return compareVersions(v, min) >= 0;
}

export function isSupportedVersion(v: string): boolean {
  return SUPPORTED_VERSIONS.includes(v);
}

/** Throws code 1 unless `v` is one of `supported` (exact match, as libcni's reconciler does). */
export function requireVersion(v: string, supported: readonly string[] = SUPPORTED_VERSIONS): void {
  if (!supported.includes(v)) {
    throw new CniError(CniCode.IncompatibleVersion, 'incompatible CNI versions', `config is "${v}", supported versions are ${JSON.stringify(supported)}`);
  }
}

/**
 * Highest version among `cniVersion` and `cniVersions` that is also in `supported` (spec 1.1 version
 * negotiation), or undefined when they share none. Malformed entries are ignored.
 */
export function pickVersion(cniVersion: string | undefined, cniVersions: readonly string[] | undefined, supported: readonly string[] = SUPPORTED_VERSIONS): string | undefined {
  const candidates = [...(cniVersions ?? []), ...(cniVersion ? [cniVersion] : [])].filter((v) => VERSION_RE.test(v) && supported.includes(v));
  if (candidates.length === 0) return undefined;
  return candidates.reduce((best, v) => (compareVersions(v, best) > 0 ? v : best));
}
