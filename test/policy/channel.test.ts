// The policy channel on loopback, over real HTTPS: a controller-side share server fed by the real computation, and
// an agent-side client applying the stream to its share store. Only a client that pins the controller's
// certificate and sends an agent's token is served; after the controller restarts with a new certificate the
// client follows the newly published one and starts over from a fresh snapshot.
import { CoreV1Api, KubeConfig, NetworkingV1Api } from '@kubernetes/client-node';
import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { ShareClient } from '../../src/policy/agent/share-client.js';
import { ShareStore } from '../../src/policy/agent/share-store.js';
import { MERGE_PATCH } from '../../src/k8s/api.js';
import { LAB_ADMIN_USER } from '../../src/lab/apiserver/tokenreview.js';
import { bearerTokenSource, controllerEndpointSource, ENDPOINT_CONFIGMAP, type ControllerEndpoint } from '../../src/policy/channel/discovery.js';
import { startPolicyChannel, type PolicyChannel } from '../../src/policy/channel/server.js';
import { PolicyController } from '../../src/policy/controller/controller.js';
import { PolicyComputation } from '../../src/policy/controller/compute.js';
import { ShareServer } from '../../src/policy/controller/share-server.js';
import { NodeShares } from '../../src/policy/controller/shares.js';
import { compileNetworkPolicy } from '../../src/policy/model/networkpolicy.js';
import { selfSignedCert } from '../../src/util/certs.js';
import { eventually } from '../../src/util/wait.js';
import { startServer, type TestServer } from '../lab/apiserver/helpers.js';

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

  it('a leader publishes its endpoint and certificate; an agent finds it through the API server, is authenticated by TokenReview, and follows the next leader', async () => {
    const srv: TestServer = await startServer();
    const kc = new KubeConfig();
    kc.loadFromFile(srv.kubeconfig);
    const core = kc.makeApiClient(CoreV1Api);
    const net = kc.makeApiClient(NetworkingV1Api);
    const controller = new PolicyController({ kubeConfig: kc });
    const channels: PolicyChannel[] = [];
    const store = new ShareStore(join(dir, 'lab-share.json'));
    const client = new ShareClient({ endpoint: controllerEndpointSource(kc), token: bearerTokenSource(kc), node: 'n1', store, onShare: () => undefined, silenceMs: 5000 });
    const start = (agentUsers = [LAB_ADMIN_USER]): Promise<PolicyChannel> =>
      startPolicyChannel({ kubeConfig: kc, controller, namespace: 'kube-system', bindAddress: '127.0.0.1', port: 0, advertiseAddress: '127.0.0.1', agentUsers }).then((c) => (channels.push(c), c));
    const published = async (): Promise<Record<string, string>> => (await core.readNamespacedConfigMap({ name: ENDPOINT_CONFIGMAP, namespace: 'kube-system' })).data ?? {};
    try {
      await core.createNamespace({ body: { metadata: { name: 'x' } } });
      for (const [name, node, ip, app] of [['web', 'n1', '10.0.0.1', 'web'], ['cl', 'n2', '10.0.0.2', 'client']] as const) {
        await core.createNamespacedPod({ namespace: 'x', body: { metadata: { name, labels: { app } }, spec: { nodeName: node, containers: [{ name: 'main', image: 'lab' }] } } });
        await core.patchNamespacedPodStatus({ name, namespace: 'x', body: { status: { podIP: ip, phase: 'Running' } } }, MERGE_PATCH);
      }
      await net.createNamespacedNetworkPolicy({
        namespace: 'x',
        body: { metadata: { name: 'web' }, spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ _from: [{ podSelector: { matchLabels: { app: 'client' } } }] }] } },
      });
      expect(await controllerEndpointSource(kc)()).toBeUndefined();
      expect(await bearerTokenSource(kc)()).toBe(srv.api.token);
      await controller.start();

      // A channel whose agent users do not include the lab's user: the TokenReview says who it is, and it is refused.
      const strict = await start(['system:serviceaccount:kube-system:seine-agent']);
      const strictEndpoint = (await controllerEndpointSource(kc)())!;
      expect(strictEndpoint.url).toBe(`https://127.0.0.1:${strict.port}`);
      expect(await status(`${strictEndpoint.url}/v1/shares/n1`, strictEndpoint.ca, srv.api.token)).toBe(403);
      expect(await status(`${strictEndpoint.url}/v1/shares/n1`, strictEndpoint.ca, 'forged-token')).toBe(401);
      await strict.close();

      // The leader: the client finds it and gets n1's share.
      const first = await start();
      const firstCa = (await published())['ca.crt'];
      expect(await published()).toEqual({ endpoint: `https://127.0.0.1:${first.port}`, 'ca.crt': firstCa });
      client.start();
      await eventually('n1\'s share from the first leader', async (saw) => (saw(store.size), store.size.policies === 1 && store.size.groups === 1 ? true : undefined), 20_000, 50);

      // The next leader: a new certificate (and here a new port) replaces the ConfigMap's data; the client follows.
      await first.close();
      await net.deleteNamespacedNetworkPolicy({ name: 'web', namespace: 'x' });
      const second = await start();
      const now = await published();
      expect(now.endpoint).toBe(`https://127.0.0.1:${second.port}`);
      expect(now['ca.crt']).not.toBe(firstCa);
      await eventually('a snapshot from the second leader, without the policy', async (saw) => (saw({ snapshots: client.snapshots, size: store.size }), client.snapshots >= 2 && store.size.policies === 0 ? true : undefined), 30_000, 50);
    } finally {
      client.stop();
      for (const c of channels) await c.close();
      await controller.stop();
      await srv.stop();
    }
  }, 120_000);
});
