import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { PooledKubeConfig } from '../../src/k8s/kubeconfig.js';
import { selfSignedCert } from '../../src/lab/apiserver/tls.js';

// A TLS server on loopback that answers every GET with a Node and counts TLS handshakes.
describe('PooledKubeConfig', () => {
  const cert = selfSignedCert();
  let server: Server;
  let handshakes = 0;
  let port = 0;
  const tokens: string[] = [];

  beforeAll(async () => {
    server = createServer({ key: cert.key, cert: cert.cert }, (req, res) => {
      tokens.push(req.headers.authorization ?? '');
      const name = decodeURIComponent(req.url!.split('/').pop()!);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name } }));
    });
    server.on('secureConnection', () => handshakes++);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });

  const load = (kc: KubeConfig, token: string): KubeConfig => {
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `https://127.0.0.1:${port}`, caData: Buffer.from(cert.cert).toString('base64') }],
      users: [{ name: 'u', token }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    return kc;
  };

  async function calls(kc: KubeConfig, n: number, concurrent = false): Promise<number> {
    const before = handshakes;
    const core = kc.makeApiClient(CoreV1Api);
    const one = async (i: number): Promise<void> => {
      expect((await core.readNode({ name: `n${i}` })).metadata?.name).toBe(`n${i}`);
    };
    if (concurrent) await Promise.all(Array.from({ length: n }, (_, i) => one(i)));
    else for (let i = 0; i < n; i++) await one(i);
    return handshakes - before;
  }

  it('a plain KubeConfig opens a connection per call (what the pool avoids)', async () => {
    expect(await calls(load(new KubeConfig(), 't'), 5)).toBe(5);
  });

  it('reuses one TLS connection for sequential calls, a few for concurrent ones, and verifies the server', async () => {
    const kc = load(new PooledKubeConfig(), 't');
    expect(await calls(kc, 20)).toBe(1);
    expect(await calls(kc, 10, true)).toBeLessThanOrEqual(10);
    expect(await calls(kc, 20)).toBe(0);
    expect(tokens.slice(-1)).toEqual(['Bearer t']);
    // A CA that did not sign the server's certificate still fails: the pool keeps the TLS settings.
    const other = selfSignedCert('someone-else');
    const wrong = new PooledKubeConfig();
    wrong.loadFromOptions({
      clusters: [{ name: 'c', server: `https://127.0.0.1:${port}`, caData: Buffer.from(other.cert).toString('base64') }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    await expect(wrong.makeApiClient(CoreV1Api).readNode({ name: 'n' })).rejects.toThrow(/certificate|self.signed|verify/i);
  });

  it('a token change keeps the connection (it is a header); new TLS settings get a new one', async () => {
    const kc = load(new PooledKubeConfig(), 'first');
    expect(await calls(kc, 3)).toBe(1);
    (kc.users[0] as { token?: string }).token = 'second';
    expect(await calls(kc, 3)).toBe(0);
    expect(tokens.slice(-1)).toEqual(['Bearer second']);
    load(kc, 'third');
    (kc.clusters[0] as { skipTLSVerify?: boolean }).skipTLSVerify = true;
    expect(await calls(kc, 3)).toBe(1);
  });
});
