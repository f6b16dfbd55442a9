import { CniCode, CniError } from './errors.js';
import { cidrFamily, validateResult } from './schema/validate.js';
import type { CniDns, CniInterface, CniIpConfig, CniResult, CniRoute } from './types.js';
import { compareVersions, isSupportedVersion, SUPPORTED_VERSIONS } from './version.js';

function requireConvertible(v: string, what: string): void {
  if (!isSupportedVersion(v)) {
    throw new CniError(CniCode.IncompatibleVersion, `cannot convert ${what} version ${v}`, `supported result versions are ${SUPPORTED_VERSIONS.join(', ')}`);
  }
}

function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, val]) => val !== undefined)) as T;
}

function dnsOf(d: CniDns | undefined): CniDns | undefined {
  if (!d) return undefined;
  const out = defined({ nameservers: d.nameservers, domain: d.domain, search: d.search, options: d.options });
  return Object.keys(out).length ? out : undefined;
}

/**
 * The same result in another spec version (0.3.0 … 1.1.0). Going below 1.0.0 adds `ips[].version`;
 * going to 1.0.0 or later drops it; fields new in 1.1.0 (interface mtu/socketPath/pciID, route
 * mtu/advmss/priority/table/scope) are dropped below 1.1.0, since those versions cannot carry them.
 * Unknown keys are not carried over. 0.1.0/0.2.0 on either side is code 1.
 */
export function convertResult(result: CniResult, toVersion: string): CniResult {
  requireConvertible(result.cniVersion, 'result from');
  requireConvertible(toVersion, 'result to');
  const pre1 = compareVersions(toVersion, '1.0.0') < 0;
  const v11 = compareVersions(toVersion, '1.1.0') >= 0;
  const interfaces = result.interfaces?.map((i): CniInterface =>
    defined({
      name: i.name,
      mac: i.mac,
      mtu: v11 ? i.mtu : undefined,
      sandbox: i.sandbox,
      socketPath: v11 ? i.socketPath : undefined,
      pciID: v11 ? i.pciID : undefined,
    }),
  );
  const ips = result.ips?.map((ip): CniIpConfig => {
    const fam = cidrFamily(ip.address);
    if (pre1 && !fam) throw new CniError(CniCode.DecodeFailure, 'invalid result', `address ${JSON.stringify(ip.address)} has no IP version`);
    return defined({
      ...(pre1 ? { version: String(fam) as '4' | '6' } : {}),
      address: ip.address,
      gateway: ip.gateway,
      interface: ip.interface,
    });
  });
  const routes = result.routes?.map((r): CniRoute =>
    defined({
      dst: r.dst,
      gw: r.gw,
      ...(v11 ? { mtu: r.mtu, advmss: r.advmss, priority: r.priority, table: r.table, scope: r.scope } : {}),
    }),
  );
  return defined({
    cniVersion: toVersion,
    interfaces: interfaces?.length ? interfaces : undefined,
    ips: ips?.length ? ips : undefined,
    routes: routes?.length ? routes : undefined,
    dns: dnsOf(result.dns),
  });
}

/**
 * A decoded result, validated (schema and addresses) and converted to `toVersion` when given.
 * `code`/`msg` say how an invalid one is reported.
 */
export function parseResult(value: unknown, opts: { toVersion?: string; code?: number; msg?: string } = {}): CniResult {
  const r = validateResult(value, opts.code, opts.msg);
  return opts.toVersion ? convertResult(r, opts.toVersion) : r;
}
