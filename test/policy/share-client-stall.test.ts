// The agent's share client against a controller that takes its request and never answers (its TokenReview stuck
// on an API server that does not reply, say): the client gives the request up after its silence bound and tries
// again, instead of waiting for that answer for as long as the agent runs. Real HTTPS on loopback.
import { describe, expect, it } from '@jest/globals';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { ShareClient } from '../../src/policy/agent/share-client.js';
import { ShareStore } from '../../src/policy/agent/share-store.js';
import { selfSignedCert } from '../../src/util/certs.js';
import { eventually } from '../../src/util/wait.js';

describe('policy share client', () => {
  it('gives up a request the controller never answers and gets its share on the next one', async () => {
    const tls = selfSignedCert({ commonName: 'seine-controller', ips: ['127.0.0.1'] });
    const held: ServerResponse[] = [];
    let requests = 0;
    const server = createServer(tls, (_req: IncomingMessage, res: ServerResponse) => {
      // The first request is held without an answer; the next ones get a snapshot.
      if (++requests === 1) return void held.push(res);
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(`${JSON.stringify({ type: 'snapshot', messages: [{ kind: 'pods', value: { uids: ['pod-a'] } }] })}\n`);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const store = new ShareStore();
    const client = new ShareClient({
      endpoint: async () => ({ url, ca: tls.cert }),
      token: async () => 'agent-token',
      node: 'n1',
      store,
      onShare: () => undefined,
      log: pino({ level: 'silent' }),
      // Short here so the test is quick; without a bound the client would wait on the first request for ever.
      silenceMs: 500,
    });
    try {
      client.start();
      await eventually('the share from the second request', async (saw) => (saw({ requests, snapshots: client.snapshots }), client.snapshots > 0 ? true : undefined), 20_000);
      expect(store.knows('pod-a')).toBe(true);
      expect(requests).toBeGreaterThanOrEqual(2);
    } finally {
      client.stop();
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
