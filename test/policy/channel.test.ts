// The policy channel on loopback: a controller-side share server fed by the real computation, and an agent-side
// client applying the stream to its share store; reconnection after the controller restarts starts from a
// fresh snapshot.
import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ShareClient } from '../../src/policy/agent/share-client.js';
import { ShareStore } from '../../src/policy/agent/share-store.js';
import { PolicyComputation } from '../../src/policy/controller/compute.js';
import { ShareServer } from '../../src/policy/controller/share-server.js';
import { NodeShares } from '../../src/policy/controller/shares.js';
import { compileNetworkPolicy } from '../../src/policy/model/networkpolicy.js';
import { eventually } from '../../src/util/wait.js';

describe('policy channel (loopback)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'seine-channel-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('streams a node its share, then changes, and starts over from a snapshot after the controller restarts', async () => {
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
    const serve = async (port: number): Promise<{ server: ShareServer; port: number }> => {
      const server = new ShareServer({ shares, ready: () => ready, onChange: (l) => (listeners.add(l), () => listeners.delete(l)), heartbeatMs: 200 });
      return { server, port: await server.listen('127.0.0.1', port) };
    };
    const first = await serve(0);
    let server = first.server;
    const port = first.port;
    const status = (path: string): Promise<number> => new Promise((r) => get(`http://127.0.0.1:${port}${path}`, (res) => (res.resume(), r(res.statusCode ?? 0))));
    const store = new ShareStore(join(dir, 'share.json'));
    let applied = 0;
    const client = new ShareClient({ endpoint: async () => `http://127.0.0.1:${port}`, node: 'n1', store, onShare: () => applied++, silenceMs: 2000 });
    try {
      // Until the computation has listed everything, agents are told to come back (and the client does).
      expect(await status('/v1/shares/n1')).toBe(503);
      client.start();
      ready = true;
      await eventually('the snapshot applied', async () => (store.size.policies === 1 && store.size.groups === 1 ? true : undefined), 10_000, 50);
      const members = (): string[] => [...store.share().groups.values()][0]?.map((m) => m.ip) ?? [];
      expect(members()).toEqual(['10.0.0.2']);
      // A new client pod: an update with the group only.
      c.upsertPod({ uid: 'cl2', namespace: 'x', name: 'cl2', labels: { app: 'client' }, ip: '10.0.0.3', node: 'n2', namedPorts: [] });
      drain();
      await eventually('the update applied', async () => (members().length === 2 ? true : undefined), 10_000, 50);
      expect(server.connections).toBe(1);

      // The controller restarts (same port); meanwhile the policy goes. The client reconnects and gets a snapshot
      // without it: the store replaces what it had.
      await server.close();
      c.deletePolicy('p');
      drain();
      ({ server } = await serve(port));
      await eventually('a second snapshot, without the policy', async () => (client.snapshots === 2 && store.size.policies === 0 ? true : undefined), 15_000, 50);
      expect(store.size).toEqual({ policies: 0, groups: 0 });

      // Bad requests are refused.
      expect(await status('/v1/shares/Not_A_Node')).toBe(400);
      expect(await status('/v1/other')).toBe(404);
    } finally {
      client.stop();
      await server.close();
    }
  }, 60_000);
});
