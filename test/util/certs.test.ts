// Self-signed serving certificates: what openssl reads in them, and that node's TLS client accepts one as the CA of
// the addresses it names (and only those).
import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { connect, createServer, type Server } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { selfSignedCert } from '../../src/util/certs.js';

function openssl(cert: string): string {
  return execFileSync('openssl', ['x509', '-noout', '-text'], { input: cert, encoding: 'utf8' });
}

/** Handshake against a loopback server with `cert`, connecting to `host` and verifying as `servername`. */
async function handshake(served: { key: string; cert: string }, ca: string, servername: string): Promise<string> {
  const server: Server = createServer({ key: served.key, cert: served.cert }, (s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as AddressInfo).port;
    return await new Promise<string>((resolve) => {
      const s = connect({ host: '127.0.0.1', port, ca, servername: /^[\d.]+$/.test(servername) ? undefined : servername }, () => {
        s.destroy();
        resolve('ok');
      });
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
  } finally {
    await new Promise((r) => server.close(r));
  }
}

describe('selfSignedCert', () => {
  it('names the requested addresses and names, is a CA and a server certificate, valid for the days asked', () => {
    const { cert } = selfSignedCert({ commonName: 'seine-controller', ips: ['192.0.2.7', '2001:db8::1'], dnsNames: ['seine.example'], days: 30 });
    const text = openssl(cert);
    expect(text).toMatch(/Subject: CN\s*=\s*seine-controller/);
    expect(text).toMatch(/IP Address:192\.0\.2\.7, IP Address:2001:DB8:0:0:0:0:0:1, DNS:seine\.example/);
    expect(text).toMatch(/CA:TRUE/);
    expect(text).toMatch(/TLS Web Server Authentication/);
    const notAfter = /Not After : (.*)/.exec(text)![1]!;
    const days = (Date.parse(notAfter) - Date.now()) / 86400_000;
    expect(days).toBeGreaterThan(29);
    expect(days).toBeLessThan(31);
  });

  it('writes GeneralizedTime past 2049 (UTCTime cannot say 2050)', () => {
    const { cert } = selfSignedCert({ commonName: 'long', ips: ['127.0.0.1'], days: 40 * 365 });
    const notAfter = /Not After : (.*)/.exec(openssl(cert))![1]!;
    expect(new Date(notAfter).getUTCFullYear()).toBeGreaterThanOrEqual(2050);
  });

  it('is accepted by node as the CA for its own address, not for another one, and not in place of another certificate', async () => {
    const mine = selfSignedCert({ commonName: 'c', ips: ['127.0.0.1'] });
    const other = selfSignedCert({ commonName: 'c', ips: ['127.0.0.1'] });
    expect(await handshake(mine, mine.cert, '127.0.0.1')).toBe('ok');
    expect(await handshake(mine, other.cert, '127.0.0.1')).not.toBe('ok');
    const elsewhere = selfSignedCert({ commonName: 'c', ips: ['192.0.2.7'] });
    expect(await handshake(elsewhere, elsewhere.cert, '127.0.0.1')).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    const forName = selfSignedCert({ commonName: 'c', dnsNames: ['seine.example'] });
    expect(await handshake(forName, forName.cert, 'seine.example')).toBe('ok');
    expect(await handshake(forName, forName.cert, 'other.example')).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
  });

  it('refuses to make a certificate for nothing or for a malformed address', () => {
    expect(() => selfSignedCert({ commonName: 'x' })).toThrow(/at least one/);
    expect(() => selfSignedCert({ commonName: 'x', ips: ['300.1.1.1'] })).toThrow(/not an IP/);
  });
});
