// The policy channel on loopback, over real HTTPS: a controller-side share server fed by the real computation, and
// an agent-side client applying the stream to its share store. Only a client that pins the controller's
// certificate and sends an agent's token is served; after the controller restarts with a new certificate the
// client follows the newly published one and starts over from a fresh snapshot.
import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { ShareClient } from '../../src/policy/agent/share-client.js';
import { ShareStore } from '../../src/policy/agent/share-store.js';
import type { ControllerEndpoint } from '../../src/policy/channel/discovery.js';
import { PolicyComputation } from '../../src/policy/controller/compute.js';
import { ShareServer } from '../../src/policy/controller/share-server.js';
import { NodeShares } from '../../src/policy/controller/shares.js';
import { compileNetworkPolicy } from '../../src/policy/model/networkpolicy.js';
import { selfSignedCert } from '../../src/util/certs.js';
import { eventually } from '../../src/util/wait.js';

const AGENT = 'system:serviceaccount:kube-system:seine-agent';
/** Tokens the stand-in authenticator knows (the TokenReview itself is tested against the lab API server). */
const USERS: Record<string, string> = { 'agent-token': AGENT, 'other-token': 'system:serviceaccount:default:someone' };

/** Status of one request (or the TLS error that prevented it), with the given CA and token. */
function status(url: string, ca: string, token?: string): Promise<number | string> {
  return new Promise((resolve) => {
    const req = get(url, { ca, agent: false, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      res.destroy();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

function plainStatus(url: string): Promise<number | string> {
  return new Promise((resolve) => {
    const req = httpGet(url, { agent: false }, (res) => {
      res.destroy();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

describe('policy channel (loopback HTTPS)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'seine-channel-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('streams an authenticated agent its share, refuses others, and follows a restarted controller to its new certificate', async () => {
    const c = new PolicyComputation();
    const shares = new NodeShares(c);
    const listeners = new Set<(nodes: ReadonlySet<string>) => void>();
    const drain = (): void => {
      const { nodes } = c.drain();
      for (const l of listeners) l(nodes);
    };
    c.upsertNamespace('x', {});
    c.upsertPod({ uid: 'web', namespace: 'x', name: 'web', labels: { app: 'web' }, ip: '10.0.0.1', node: 'n1', namedPorts: [] });
    c.upsertPod({ uid: 'cl', namespace: 'x', name: 'cl', labels: { app: 'client' }, ip: '10.0.0.2', node: 'n2', namedPorts: [] });
    const np = compileNetworkPolicy({ metadata: { namespace: 'x', name: 'p', uid: 'p' }, spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ _from: [{ podSelector: { matchLabels: { app: 'client' } } }] }] } });
    c.upsertPolicy(np.policy, np.groups);
    drain();
    let ready = false;
    let reviews = 0;
    // Each start is a new controller: a new certificate, published as the endpoint the client reads.
    let published: ControllerEndpoint | undefined;
    const serve = async (port: number): Promise<{ server: ShareServer; port: number }> => {
      const tls = selfSignedCert({ commonName: 'seine-controller', ips: ['127.0.0.1'] });
      const server = new ShareServer({
        shares,
        tls,
        authenticate: async (token) => (reviews++, USERS[token]),
        agentUsers: [AGENT],
        ready: () => ready,
        onChange: (l) => (listeners.add(l), () => listeners.delete(l)),
        heartbeatMs: 200,
      });
      const bound = await server.listen('127.0.0.1', port);
      published = { url: `https://127.0.0.1:${bound}`, ca: tls.cert };
      return { server, port: bound };
    };
    let { server, port } = await serve(0);
    const first = published!;
    const share = `${first.url}/v1/shares/n1`;

    const store = new ShareStore(join(dir, 'share.json'));
    let applied = 0;
    const lines: Array<{ level: number; msg: string; status?: number }> = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as (typeof lines)[number]) });
    let token = 'other-token';
    const client = new ShareClient({ endpoint: async () => published, token: async () => token, node: 'n1', store, onShare: () => applied++, silenceMs: 2000, log });
    // A second agent that trusts some other certificate: it never gets a share.
    const stranger = new ShareStore(join(dir, 'stranger.json'));
    const wrongCa = new ShareClient({ endpoint: async () => ({ url: first.url, ca: selfSignedCert({ commonName: 'impostor', ips: ['127.0.0.1'] }).cert }), token: async () => 'agent-token', node: 'n1', store: stranger, onShare: () => undefined, silenceMs: 2000 });
    try {
      // Refused before anything else: no token, a token nobody issued, a user that is not an agent.
      expect(await status(share, first.ca)).toBe(401);
      expect(await status(share, first.ca, 'forged-token')).toBe(401);
      expect(await status(share, first.ca, 'other-token')).toBe(403);
      // The wrong CA fails the handshake; plain HTTP is not served.
      expect(typeof (await status(share, selfSignedCert({ commonName: 'impostor', ips: ['127.0.0.1'] }).cert, 'agent-token'))).toBe('string');
      expect(await plainStatus(share.replace('https:', 'http:'))).not.toBe(200);
      // Until the computation has listed everything, agents are told to come back (and the client does).
      expect(await status(share, first.ca, 'agent-token')).toBe(503);

      // The client starts as the wrong user: refused, one warning however often it retries.
      const before = reviews;
      client.start();
      wrongCa.start();
      ready = true;
      await eventually('the client refused a few times', async (saw) => (saw(reviews - before), reviews - before >= 4 ? true : undefined), 20_000, 50);
      const refusals = (): number => lines.filter((l) => l.level === 40 && l.status === 403).length;
      expect(refusals()).toBe(1);
      expect(store.size).toEqual({ policies: 0, groups: 0 });

      // With the agent's token it is served: the snapshot, then updates.
      token = 'agent-token';
      await eventually('the snapshot applied', async () => (store.size.policies === 1 && store.size.groups === 1 ? true : undefined), 15_000, 50);
      expect(lines.some((l) => l.msg === 'the controller accepts this agent again')).toBe(true);
      const members = (): string[] => [...store.share().groups.values()][0]?.map((m) => m.ip) ?? [];
      expect(members()).toEqual(['10.0.0.2']);
      c.upsertPod({ uid: 'cl2', namespace: 'x', name: 'cl2', labels: { app: 'client' }, ip: '10.0.0.3', node: 'n2', namedPorts: [] });
      drain();
      await eventually('the update applied', async () => (members().length === 2 ? true : undefined), 10_000, 50);
      expect(server.connections).toBe(1);
      expect(stranger.size).toEqual({ policies: 0, groups: 0 });
      expect(wrongCa.snapshots).toBe(0);

      // The controller restarts (same port, a new certificate); meanwhile the policy goes. The client follows the
      // new certificate and gets a snapshot without the policy: the store replaces what it had.
      await server.close();
      c.deletePolicy('p');
      drain();
      ({ server, port } = await serve(port));
      expect(published!.ca).not.toBe(first.ca);
      await eventually('a second snapshot, without the policy', async () => (client.snapshots === 2 && store.size.policies === 0 ? true : undefined), 15_000, 50);
      expect(store.size).toEqual({ policies: 0, groups: 0 });
      // The old certificate is no longer good for this address.
      expect(typeof (await status(share, first.ca, 'agent-token'))).toBe('string');

      // Bad requests are refused.
      expect(await status(`${published!.url}/v1/shares/Not_A_Node`, published!.ca, 'agent-token')).toBe(400);
      expect(await status(`${published!.url}/v1/other`, published!.ca, 'agent-token')).toBe(404);
    } finally {
      client.stop();
      wrongCa.stop();
      await server.close();
    }
  }, 90_000);
});
