import { Environment, Optional } from '@marcbachmann/cel-js';
import ipaddr from 'ipaddr.js';

// The CEL functions kube-apiserver adds to CRD validation rules (k8s.io/apiserver/pkg/cel/library):
// IP and CIDR, URLs, regex find, list extensions, and the string and set extensions of cel-go that the
// CEL library lacks. Errors are thrown as kube words them, so messages match.

type Addr = ipaddr.IPv4 | ipaddr.IPv6;

/** An IP address value (`net.IP`). */
export class CelIP {
  constructor(readonly addr: Addr) {}
  toString(): string {
    return canonical(this.addr);
  }
}

/** A CIDR value (`net.CIDR`): an address and a prefix length, host bits kept as written. */
export class CelCIDR {
  constructor(
    readonly addr: Addr,
    readonly bits: number,
  ) {}
  toString(): string {
    return `${canonical(this.addr)}/${this.bits}`;
  }
}

/** A parsed URL (`kubernetes.URL`). */
export class CelURL {
  constructor(
    readonly raw: string,
    readonly url: URL | undefined,
  ) {}
}

/** A resource quantity (`kubernetes.Quantity`), exactly, as num/den. */
export class CelQuantity {
  constructor(
    readonly num: bigint,
    readonly den: bigint,
  ) {}
  compare(o: CelQuantity): number {
    const d = this.num * o.den - o.num * this.den;
    return d < 0n ? -1 : d > 0n ? 1 : 0;
  }
  plus(o: CelQuantity, sign: bigint): CelQuantity {
    return new CelQuantity(this.num * o.den + sign * o.num * this.den, this.den * o.den);
  }
}

// Namespaces (`sets.contains`, `ip.isCanonical`) are constants of their own type, so the CEL
// library's receiver calls stand in for cel-go's namespaced functions; the library tells types by
// constructor, hence one class each.
class SetsNamespace {}
class IpNamespace {}
class StringsNamespace {}

function canonical(a: Addr): string {
  return a.kind() === 'ipv6' ? (a as ipaddr.IPv6).toRFC5952String() : a.toString();
}

/** netip.ParseAddr's rules plus kube's: no zone, no IPv4-mapped IPv6, no leading zeros. */
function parseAddr(s: string): Addr | string {
  if (s.includes('%')) return `IP address with zone value is not allowed: ${s}`;
  if (ipaddr.IPv4.isValidFourPartDecimal(s)) return ipaddr.IPv4.parse(s);
  if (s.includes(':') && ipaddr.IPv6.isValid(s)) {
    const a = ipaddr.IPv6.parse(s);
    if (a.isIPv4MappedAddress()) return `IPv4-mapped IPv6 address is not allowed: ${s}`;
    return a;
  }
  return `IP Address ${JSON.stringify(s)} parse error during conversion from string: ParseAddr(${JSON.stringify(s)}): unable to parse IP`;
}

function parseCidr(s: string): CelCIDR | string {
  const slash = s.lastIndexOf('/');
  const fail = `network address parse error during conversion from string: netip.ParsePrefix(${JSON.stringify(s)}): invalid prefix`;
  if (slash < 0) return fail;
  const addr = parseAddr(s.slice(0, slash));
  const bitsText = s.slice(slash + 1);
  if (typeof addr === 'string' || !/^(0|[1-9]\d{0,2})$/.test(bitsText)) return fail;
  const bits = Number(bitsText);
  if (bits > (addr.kind() === 'ipv4' ? 32 : 128)) return fail;
  return new CelCIDR(addr, bits);
}

function must<T>(v: T | string): T {
  if (typeof v === 'string') throw new Error(v);
  return v;
}

function sameFamily(a: Addr, b: Addr): boolean {
  return a.kind() === b.kind();
}

function contains(c: CelCIDR, a: Addr): boolean {
  return sameFamily(c.addr, a) && (a as ipaddr.IPv4).match(c.addr as ipaddr.IPv4, c.bits);
}

function masked(c: CelCIDR): CelCIDR {
  const bytes = c.addr.toByteArray();
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, c.bits - i * 8));
    bytes[i] = bytes[i]! & (0xff << (8 - keep)) & 0xff;
  }
  return new CelCIDR(ipaddr.fromByteArray(bytes), c.bits);
}

function isLinkLocalMulticast(a: Addr): boolean {
  return a.kind() === 'ipv4' ? (a as ipaddr.IPv4).match(ipaddr.IPv4.parse('224.0.0.0'), 24) : (a as ipaddr.IPv6).match(ipaddr.IPv6.parse('ff02::'), 16);
}

function isGlobalUnicast(a: Addr): boolean {
  const r = a.range();
  if (['unspecified', 'loopback', 'multicast', 'linkLocal'].includes(r)) return false;
  return !(a.kind() === 'ipv4' && a.toString() === '255.255.255.255');
}

function parseUrl(s: string): CelURL | undefined {
  // url.ParseRequestURI: an absolute URL or an absolute path, no fragment.
  if (s.includes('#') || /\s/.test(s)) return undefined;
  if (s.startsWith('/')) return new CelURL(s, undefined);
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:/.test(s)) return undefined;
  try {
    return new CelURL(s, new URL(s));
  } catch {
    return undefined;
  }
}

const QUANTITY = /^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;
const DECIMAL_SI: Record<string, number> = { n: -9, u: -6, m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const BINARY_SI = ['Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];

/** resource.ParseQuantity's grammar: a signed decimal and a binary-SI, decimal-SI or exponent suffix. */
function parseQuantity(s: string): CelQuantity | string {
  const m = QUANTITY.exec(s);
  if (!m) return "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
  const [whole = '', frac = ''] = m[1]!.replace(/^[+-]/, '').split('.');
  let num = BigInt(`${whole}${frac}` || '0') * (m[1]!.startsWith('-') ? -1n : 1n);
  let den = 10n ** BigInt(frac.length);
  const suffix = m[2] ?? '';
  const binary = BINARY_SI.indexOf(suffix);
  const exp = binary >= 0 ? 0 : suffix in DECIMAL_SI ? DECIMAL_SI[suffix]! : suffix ? Number(suffix.slice(1)) : 0;
  if (binary >= 0) num *= 1024n ** BigInt(binary + 1);
  if (exp >= 0) num *= 10n ** BigInt(exp);
  else den *= 10n ** BigInt(-exp);
  return new CelQuantity(num, den);
}

function compare(a: unknown, b: unknown): number {
  return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
}

const ORDERED = ['int', 'uint', 'double', 'string', 'bool', 'google.protobuf.Timestamp', 'google.protobuf.Duration'];
const NUMERIC = ['int', 'uint', 'double'];

function extreme(list: unknown[], sign: number, name: string): unknown {
  if (list.length === 0) throw new Error(`${name} called on empty list`);
  return list.reduce((best, x) => (compare(x, best) * sign > 0 ? x : best));
}

function equalValues(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a instanceof CelIP || a instanceof CelCIDR) return String(a) === String(b);
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  return JSON.stringify(a, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)) === JSON.stringify(b, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
}

/** A value as `%s` shows it (cel-go's string formatting). */
function formatString(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(formatString).join(', ')}]`;
  if (v === null || v === undefined) return 'null';
  if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
  if (v instanceof Date) return v.toISOString().replace('.000Z', 'Z');
  if (typeof v === 'object' && v.constructor === Object) return `{${Object.entries(v).map(([k, x]) => `${formatString(k)}: ${formatString(x)}`).join(', ')}}`;
  return String(v);
}

/** cel-go's `string.format(list)`: %s %d %f %e %b %o %x %X and %%, with an optional precision. */
function format(template: string, args: unknown[]): string {
  let next = 0;
  return template.replace(/%(\.\d+)?([sdfebxXo%])/g, (_whole, precision: string | undefined, verb: string) => {
    if (verb === '%') return '%';
    if (next >= args.length) throw new Error(`index ${next} out of range`);
    const v = args[next++];
    const digits = precision ? Number(precision.slice(1)) : 6;
    switch (verb) {
      case 's':
        return formatString(v);
      case 'd':
        if (typeof v !== 'bigint') throw new Error(`error during formatting: decimal clause can only be used on integers, was given ${typeof v}`);
        return v.toString();
      case 'f':
        return Number(v).toFixed(digits);
      case 'e':
        return Number(v).toExponential(digits).replace(/e([+-])(\d)$/, 'e$10$2');
      case 'b':
        return typeof v === 'boolean' ? String(v) : BigInt(v as bigint).toString(2);
      case 'o':
        return BigInt(v as bigint).toString(8);
      default: {
        const hex = typeof v === 'string' ? Buffer.from(v).toString('hex') : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : BigInt(v as bigint).toString(16);
        return verb === 'X' ? hex.toUpperCase() : hex;
      }
    }
  });
}

function quote(s: string): string {
  return JSON.stringify(s);
}

/** A new environment with kube's CEL libraries; clone it per schema. */
export function kubernetesEnvironment(): Environment {
  const env = new Environment({ enableOptionalTypes: true });

  // IP and CIDR (library/ip.go, library/cidr.go).
  env
    .registerType('net.IP', { ctor: CelIP })
    .registerType('net.CIDR', { ctor: CelCIDR })
    .registerType('kubernetes.ip', { ctor: IpNamespace })
    .registerConstant('ip', 'kubernetes.ip', new IpNamespace())
    .registerFunction('isIP(string): bool', (s: string) => typeof parseAddr(s) !== 'string')
    .registerFunction('ip(string): net.IP', (s: string) => new CelIP(must(parseAddr(s))))
    .registerFunction('kubernetes.ip.isCanonical(string): bool', (_ns: unknown, s: string) => canonical(must(parseAddr(s))) === s)
    .registerFunction('string(net.IP): string', (a: CelIP) => a.toString())
    .registerFunction('net.IP.family(): int', (a: CelIP) => (a.addr.kind() === 'ipv4' ? 4n : 6n))
    .registerFunction('net.IP.isUnspecified(): bool', (a: CelIP) => a.addr.range() === 'unspecified')
    .registerFunction('net.IP.isLoopback(): bool', (a: CelIP) => a.addr.range() === 'loopback')
    .registerFunction('net.IP.isLinkLocalMulticast(): bool', (a: CelIP) => isLinkLocalMulticast(a.addr))
    .registerFunction('net.IP.isLinkLocalUnicast(): bool', (a: CelIP) => a.addr.range() === 'linkLocal')
    .registerFunction('net.IP.isGlobalUnicast(): bool', (a: CelIP) => isGlobalUnicast(a.addr))
    .registerOperator('net.IP == net.IP', (a: CelIP, b: CelIP) => a.toString() === b.toString())
    .registerFunction('isCIDR(string): bool', (s: string) => typeof parseCidr(s) !== 'string')
    .registerFunction('cidr(string): net.CIDR', (s: string) => must(parseCidr(s)))
    .registerFunction('string(net.CIDR): string', (c: CelCIDR) => c.toString())
    .registerFunction('net.CIDR.ip(): net.IP', (c: CelCIDR) => new CelIP(c.addr))
    .registerFunction('net.CIDR.masked(): net.CIDR', (c: CelCIDR) => masked(c))
    .registerFunction('net.CIDR.prefixLength(): int', (c: CelCIDR) => BigInt(c.bits))
    .registerFunction('net.CIDR.containsIP(net.IP): bool', (c: CelCIDR, a: CelIP) => contains(c, a.addr))
    .registerFunction('net.CIDR.containsIP(string): bool', (c: CelCIDR, s: string) => contains(c, must(parseAddr(s))))
    .registerFunction('net.CIDR.containsCIDR(net.CIDR): bool', (c: CelCIDR, o: CelCIDR) => o.bits >= c.bits && contains(c, o.addr))
    .registerFunction('net.CIDR.containsCIDR(string): bool', (c: CelCIDR, s: string) => {
      const o = must(parseCidr(s));
      return o.bits >= c.bits && contains(c, o.addr);
    })
    .registerOperator('net.CIDR == net.CIDR', (a: CelCIDR, b: CelCIDR) => a.toString() === b.toString());

  // URLs (library/urls.go).
  env
    .registerType('kubernetes.URL', { ctor: CelURL })
    .registerFunction('isURL(string): bool', (s: string) => parseUrl(s) !== undefined)
    .registerFunction('url(string): kubernetes.URL', (s: string) => {
      const u = parseUrl(s);
      if (!u) throw new Error(`URL parse error during conversion from string: parse ${JSON.stringify(s)}: invalid URI for request`);
      return u;
    })
    .registerFunction('kubernetes.URL.getScheme(): string', (u: CelURL) => u.url?.protocol.replace(/:$/, '') ?? '')
    .registerFunction('kubernetes.URL.getHost(): string', (u: CelURL) => u.url?.host ?? '')
    .registerFunction('kubernetes.URL.getHostname(): string', (u: CelURL) => u.url?.hostname.replace(/^\[|\]$/g, '') ?? '')
    .registerFunction('kubernetes.URL.getPort(): string', (u: CelURL) => u.url?.port ?? '')
    .registerFunction('kubernetes.URL.getEscapedPath(): string', (u: CelURL) => (u.url ? u.url.pathname : u.raw.split('?')[0]!))
    .registerFunction('kubernetes.URL.getQuery(): map<string, list<string>>', (u: CelURL) => {
      const out: Record<string, string[]> = {};
      const search = u.url ? u.url.searchParams : new URLSearchParams(u.raw.split('?')[1] ?? '');
      for (const [k, v] of search) (out[k] ??= []).push(v);
      return out;
    });

  // Quantities (library/quantity.go).
  const intQuantity = (n: bigint): CelQuantity => new CelQuantity(n, 1n);
  env
    .registerType('kubernetes.Quantity', { ctor: CelQuantity })
    .registerFunction('isQuantity(string): bool', (s: string) => typeof parseQuantity(s) !== 'string')
    .registerFunction('quantity(string): kubernetes.Quantity', (s: string) => must(parseQuantity(s)))
    .registerFunction('kubernetes.Quantity.sign(): int', (q: CelQuantity) => BigInt(q.compare(intQuantity(0n))))
    .registerFunction('kubernetes.Quantity.isInteger(): bool', (q: CelQuantity) => q.num % q.den === 0n)
    .registerFunction('kubernetes.Quantity.asInteger(): int', (q: CelQuantity) => {
      const n = q.num / q.den;
      if (q.num % q.den !== 0n || n > 2n ** 63n - 1n || n < -(2n ** 63n)) throw new Error('cannot convert value to integer');
      return n;
    })
    .registerFunction('kubernetes.Quantity.asApproximateFloat(): double', (q: CelQuantity) => Number(q.num) / Number(q.den))
    .registerFunction('kubernetes.Quantity.compareTo(kubernetes.Quantity): int', (a: CelQuantity, b: CelQuantity) => BigInt(a.compare(b)))
    .registerFunction('kubernetes.Quantity.isGreaterThan(kubernetes.Quantity): bool', (a: CelQuantity, b: CelQuantity) => a.compare(b) > 0)
    .registerFunction('kubernetes.Quantity.isLessThan(kubernetes.Quantity): bool', (a: CelQuantity, b: CelQuantity) => a.compare(b) < 0)
    .registerFunction('kubernetes.Quantity.add(kubernetes.Quantity): kubernetes.Quantity', (a: CelQuantity, b: CelQuantity) => a.plus(b, 1n))
    .registerFunction('kubernetes.Quantity.add(int): kubernetes.Quantity', (a: CelQuantity, b: bigint) => a.plus(intQuantity(b), 1n))
    .registerFunction('kubernetes.Quantity.sub(kubernetes.Quantity): kubernetes.Quantity', (a: CelQuantity, b: CelQuantity) => a.plus(b, -1n))
    .registerFunction('kubernetes.Quantity.sub(int): kubernetes.Quantity', (a: CelQuantity, b: bigint) => a.plus(intQuantity(b), -1n))
    .registerOperator('kubernetes.Quantity == kubernetes.Quantity', (a: CelQuantity, b: CelQuantity) => a.compare(b) === 0);

  // Regex (library/regex.go).
  env
    .registerFunction('string.find(string): string', (s: string, re: string) => new RegExp(re, 'u').exec(s)?.[0] ?? '')
    .registerFunction('string.findAll(string): list<string>', (s: string, re: string) => [...s.matchAll(new RegExp(re, 'gu'))].map((m) => m[0]))
    .registerFunction('string.findAll(string, int): list<string>', (s: string, re: string, n: bigint) => {
      const all = [...s.matchAll(new RegExp(re, 'gu'))].map((m) => m[0]);
      return n < 0n ? all : all.slice(0, Number(n));
    });

  // Lists (library/lists.go).
  for (const t of ORDERED) {
    env
      .registerFunction(`list<${t}>.isSorted(): bool`, (l: unknown[]) => l.every((x, i) => i === 0 || compare(l[i - 1], x) <= 0))
      .registerFunction(`list<${t}>.min(): ${t}`, (l: unknown[]) => extreme(l, -1, 'min'))
      .registerFunction(`list<${t}>.max(): ${t}`, (l: unknown[]) => extreme(l, 1, 'max'));
  }
  for (const t of NUMERIC) {
    const zero = t === 'double' ? 0 : 0n;
    env.registerFunction(`list<${t}>.sum(): ${t}`, (l: Array<number | bigint>) => l.reduce((a, b) => (a as number) + (b as number), zero));
  }
  env
    .registerFunction('list<A>.indexOf(A): int', (l: unknown[], x: unknown) => BigInt(l.findIndex((y) => equalValues(x, y))))
    .registerFunction('list<A>.lastIndexOf(A): int', (l: unknown[], x: unknown) => BigInt(l.findLastIndex((y) => equalValues(x, y))));

  // cel-go's string extensions the CEL library lacks.
  env
    .registerType('kubernetes.strings', { ctor: StringsNamespace })
    .registerConstant('strings', 'kubernetes.strings', new StringsNamespace())
    .registerFunction('kubernetes.strings.quote(string): string', (_ns: unknown, s: string) => quote(s))
    .registerFunction('string.charAt(int): string', (s: string, i: bigint) => {
      const chars = [...s];
      if (i < 0n || i > BigInt(chars.length)) throw new Error(`index out of range: ${i}`);
      return chars[Number(i)] ?? '';
    })
    .registerFunction('string.replace(string, string): string', (s: string, a: string, b: string) => s.split(a).join(b))
    .registerFunction('string.replace(string, string, int): string', (s: string, a: string, b: string, n: bigint) => {
      if (n < 0n) return s.split(a).join(b);
      const parts = s.split(a);
      const head = parts.slice(0, Number(n) + 1).join(b);
      return [head, ...parts.slice(Number(n) + 1)].join(a);
    })
    .registerFunction('string.reverse(): string', (s: string) => [...s].reverse().join(''))
    .registerFunction('string.format(list<dyn>): string', (s: string, args: unknown[]) => format(s, args));

  // cel-go's sets extension.
  env
    .registerType('kubernetes.sets', { ctor: SetsNamespace })
    .registerConstant('sets', 'kubernetes.sets', new SetsNamespace())
    .registerFunction('kubernetes.sets.contains(list<A>, list<A>): bool', (_ns: unknown, a: unknown[], b: unknown[]) => b.every((x) => a.some((y) => equalValues(x, y))))
    .registerFunction('kubernetes.sets.equivalent(list<A>, list<A>): bool', (_ns: unknown, a: unknown[], b: unknown[]) => b.every((x) => a.some((y) => equalValues(x, y))) && a.every((x) => b.some((y) => equalValues(x, y))))
    .registerFunction('kubernetes.sets.intersects(list<A>, list<A>): bool', (_ns: unknown, a: unknown[], b: unknown[]) => b.some((x) => a.some((y) => equalValues(x, y))));

  return env;
}

export { Optional };
