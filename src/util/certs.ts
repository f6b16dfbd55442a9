import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import ipaddr from 'ipaddr.js';

// Self-signed serving certificates, built with node:crypto and a small DER writer (no openssl at run time).
// The certificate is its own CA: a client pins it (the lab's kubeconfig, the agents' policy channel) rather
// than trusting a chain.

export interface ServingCert {
  /** PKCS#8 private key, PEM. */
  key: string;
  /** X.509 certificate, PEM. */
  cert: string;
}

export interface SelfSignedCertOptions {
  commonName: string;
  /** IPv4 or IPv6 addresses the certificate is valid for (subjectAltName iPAddress). */
  ips?: string[];
  /** Host names the certificate is valid for (subjectAltName dNSName). */
  dnsNames?: string[];
  /** Validity from now (it starts an hour back, for clocks a little behind); default 365. */
  days?: number;
}

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), len(body.length), body]);
}

const seq = (...c: Buffer[]): Buffer => tlv(0x30, ...c);
const set = (...c: Buffer[]): Buffer => tlv(0x31, ...c);
const octets = (b: Buffer): Buffer => tlv(0x04, b);
const bits = (b: Buffer): Buffer => tlv(0x03, Buffer.from([0]), b);
const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
const explicit = (n: number, c: Buffer): Buffer => tlv(0xa0 + n, c);
const TRUE = Buffer.from([0x01, 0x01, 0xff]);

function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out = [40 * arcs[0]! + arcs[1]!];
  for (const a of arcs.slice(2)) {
    const enc: number[] = [];
    let v = a;
    do {
      enc.unshift(v % 128);
      v = Math.floor(v / 128);
    } while (v > 0);
    for (let i = 0; i < enc.length - 1; i++) enc[i]! |= 0x80;
    out.push(...enc);
  }
  return tlv(0x06, Buffer.from(out));
}

function integer(b: Buffer): Buffer {
  // Positive and minimal: clear the sign bit, avoid a leading zero byte.
  const v = Buffer.from(b);
  v[0] = (v[0]! & 0x7f) | 0x01;
  return tlv(0x02, v);
}

/** RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
function time(d: Date): Buffer {
  const p = (n: number): string => String(n).padStart(2, '0');
  const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  const year = d.getUTCFullYear();
  if (year < 2050) return tlv(0x17, Buffer.from(`${p(year % 100)}${rest}`, 'ascii'));
  return tlv(0x18, Buffer.from(`${year}${rest}`, 'ascii'));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(id), ...(critical ? [TRUE] : []), octets(value));
}

function pem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function subjectAltName(ips: string[], dnsNames: string[]): Buffer {
  const names = [
    ...ips.map((ip) => {
      if (!ipaddr.isValid(ip)) throw new Error(`not an IP address: ${JSON.stringify(ip)}`);
      return tlv(0x87, Buffer.from(ipaddr.parse(ip).toByteArray()));
    }),
    ...dnsNames.map((n) => tlv(0x82, Buffer.from(n, 'ascii'))),
  ];
  return seq(...names);
}

/** A fresh P-256 key and a self-signed CA/server certificate for the given addresses and names. */
export function selfSignedCert(opts: SelfSignedCertOptions): ServingCert {
  const ips = opts.ips ?? [];
  const dnsNames = opts.dnsNames ?? [];
  if (!ips.length && !dnsNames.length) throw new Error('a serving certificate needs at least one IP address or DNS name');
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const ecdsaSha256 = seq(oid('1.2.840.10045.4.3.2'));
  const name = seq(set(seq(oid('2.5.4.3'), utf8(opts.commonName))));
  const now = Date.now();
  const validity = seq(time(new Date(now - 3600_000)), time(new Date(now + (opts.days ?? 365) * 86400_000)));
  const keyId = createHash('sha1').update(spki).digest();
  const extensions = explicit(
    3,
    seq(
      extension('2.5.29.19', true, seq(TRUE)), // basicConstraints: CA (it is its own trust anchor)
      extension('2.5.29.15', true, tlv(0x03, Buffer.from([0x02, 0x84]))), // keyUsage: digitalSignature, keyCertSign
      extension('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1'))), // extKeyUsage: serverAuth
      extension('2.5.29.14', false, octets(keyId)), // subjectKeyIdentifier
      extension('2.5.29.17', false, subjectAltName(ips, dnsNames)),
    ),
  );
  const tbs = seq(explicit(0, tlv(0x02, Buffer.from([2]))), integer(randomBytes(16)), ecdsaSha256, name, validity, name, spki, extensions);
  const signature = sign('sha256', tbs, privateKey);
  const cert = seq(tbs, ecdsaSha256, bits(signature));
  return { key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, cert: pem('CERTIFICATE', cert) };
}
