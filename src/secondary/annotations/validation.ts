// Value rules shared by the secondary-network schemas (annotations, NAD configs), and the ajv instance
// that knows them as formats, so schemas say `format: 'mac'` and messages say what was expected.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { cidrFamily, ipFamily } from '../../cni/schema/validate.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A namespace name: RFC 1123 label, at most 63 characters. */
export function isDnsLabel(s: string): boolean {
  return s.length <= 63 && DNS_LABEL.test(s);
}

/** An object name such as a NetworkAttachmentDefinition's: RFC 1123 subdomain, at most 253 characters. */
export function isDnsSubdomain(s: string): boolean {
  return s.length <= 253 && DNS_SUBDOMAIN.test(s);
}

/** A Linux interface name, as the kernel's dev_valid_name() accepts it: 1..15 bytes, no '/', ':' or whitespace, not "." or "..". */
export function isInterfaceName(s: string): boolean {
  return s.length >= 1 && Buffer.byteLength(s) <= 15 && s !== '.' && s !== '..' && !/[/:\s]/.test(s);
}

/** A 48-bit MAC address that an interface can carry, as lowercase colon form; undefined when not one. */
export function normalizeMac(s: string): string | undefined {
  const m = /^([0-9A-Fa-f]{2})([:-])([0-9A-Fa-f]{2})\2([0-9A-Fa-f]{2})\2([0-9A-Fa-f]{2})\2([0-9A-Fa-f]{2})\2([0-9A-Fa-f]{2})$/.exec(s);
  if (!m) return undefined;
  const octets = [m[1], m[3], m[4], m[5], m[6], m[7]].map((o) => parseInt(o!, 16));
  // Multicast (and broadcast) or all-zero addresses are refused by the kernel for an interface.
  if ((octets[0]! & 1) === 1 || octets.every((o) => o === 0)) return undefined;
  return octets.map((o) => o.toString(16).padStart(2, '0')).join(':');
}

/** An InfiniBand GUID: 8 bytes in colon form. */
export function isInfinibandGuid(s: string): boolean {
  return /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){7}$/.test(s);
}

/** A plain IPv4 or IPv6 address in canonical notation. */
export function isIp(s: string): boolean {
  return ipFamily(s) !== undefined;
}

/** An interface address with prefix (host bits allowed), e.g. 10.1.1.5/24. */
export function isCidr(s: string): boolean {
  return cidrFamily(s) !== undefined;
}

/** What each format means, for messages. */
const FORMATS: Record<string, { test: (s: string) => boolean; what: string }> = {
  'dns-label': { test: isDnsLabel, what: 'a valid namespace name (RFC 1123 label: lowercase letters, digits and "-", at most 63)' },
  'dns-subdomain': { test: isDnsSubdomain, what: 'a valid object name (RFC 1123 subdomain: lowercase letters, digits, "-" and ".", at most 253)' },
  ifname: { test: isInterfaceName, what: 'a valid interface name (1 to 15 characters, no "/", ":" or spaces, not "." or "..")' },
  mac: { test: (s) => normalizeMac(s) !== undefined, what: 'a unicast MAC address (six octets, e.g. 02:00:00:00:00:01)' },
  'ib-guid': { test: isInfinibandGuid, what: 'an InfiniBand GUID (eight octets, e.g. c2:11:22:33:44:55:66:77)' },
  ip: { test: isIp, what: 'an IP address' },
  cidr: { test: isCidr, what: 'an IP address with prefix length (CIDR, e.g. 10.1.1.5/24)' },
};

/** An ajv instance with the formats above; every secondary-network schema compiles here. */
export const ajv = new Ajv({ allErrors: true, verbose: true, allowUnionTypes: true, strict: true, logger: false });
for (const [name, f] of Object.entries(FORMATS)) ajv.addFormat(name, { type: 'string', validate: f.test });

function shown(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'object') return 'object';
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** JSON pointer to the path users write: `default-route[0]`, `plugins[0].ipam.type` (keys verbatim). */
export function fieldPath(pointer: string, prefix = ''): string {
  let out = prefix;
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(seg) ? `[${seg}]` : out ? `.${seg}` : seg;
  }
  return out || '(root)';
}

const child = (pointer: string, key: string): string => `${pointer}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;

function describe(e: ErrorObject, prefix: string, notAllowed: string): string {
  const at = fieldPath(e.instancePath, prefix);
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'format': {
      const f = FORMATS[p.format as string];
      return f ? `${at}: ${shown(e.data)} is not ${f.what}` : `${at}: ${shown(e.data)} must be a ${String(p.format)}`;
    }
    case 'false schema':
      return `${at}: ${notAllowed}`;
    case 'additionalProperties':
      return `${fieldPath(child(e.instancePath, String(p.additionalProperty)), prefix)}: unknown field`;
    case 'required':
      return `${fieldPath(child(e.instancePath, String(p.missingProperty)), prefix)}: is required`;
    case 'type':
      return `${at}: must be ${Array.isArray(p.type) ? p.type.join(' or ') : String(p.type)} (got ${shown(e.data)})`;
    case 'minimum':
    case 'maximum':
      return `${at}: ${shown(e.data)} must be ${String(p.comparison)} ${String(p.limit)}`;
    case 'pattern':
      return `${at}: ${shown(e.data)} is not valid (must match ${String(p.pattern)})`;
    case 'enum':
      return `${at}: must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')} (got ${shown(e.data)})`;
    case 'const':
      return `${at}: must be ${JSON.stringify(p.allowedValue)} (got ${shown(e.data)})`;
    default:
      return `${at}: ${e.message ?? e.keyword}`;
  }
}

/**
 * Readable problems of a failed validation ("mac: \"zz\" is not a unicast MAC address ..."), with
 * `prefix` naming where the value sits. `notAllowed` words the message for properties a schema forbids
 * with `false` (e.g. "not allowed for networkType overlay").
 */
export function problems(errors: readonly ErrorObject[] | null | undefined, prefix = '', notAllowed = 'not allowed'): string[] {
  return [...new Set((errors ?? []).map((e) => describe(e, prefix, notAllowed)))];
}

/** Problems of `value` against a compiled schema (empty when valid). */
export function check(validate: ValidateFunction, value: unknown, prefix = '', notAllowed?: string): string[] {
  return validate(value) ? [] : problems(validate.errors, prefix, notAllowed);
}
