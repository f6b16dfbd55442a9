// The nodes/proxy subresource of the lab API server: `kubectl get --raw /api/v1/nodes/NODE:PORT/proxy/PATH` reaches
// what the lab says serves that node's port (here small HTTP servers standing in for agents), authorized as `get`
// on nodes/proxy; an unknown node is kube's NotFound, an unreachable one its ServiceUnavailable.
import { describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { call, kubectl, startServer, type TestServer } from './helpers.js';

const AGENT_PORT = 10361;

/** A stand-in agent: its node's name, the path and query it was asked, JSON; 404 JSON for /v1/nope. */
async function fakeAgent(node: string): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/v1/nope') return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"no such path: /v1/nope"}');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ node, items: [{ path: url.pathname, query: url.search, authorization: req.headers.authorization ?? null }] }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('lab API server: nodes/proxy', () => {
  let srv: TestServer;
  let agent: { server: Server; url: string };
  let closedUrl: string;
  /** Accepts and hangs up, as the lab's relay does when no agent listens behind it. */
  let hangUp: TcpServer;

  beforeAll(async () => {
    agent = await fakeAgent('n1');
    // A port nothing listens on any more: the node's agent is down.
    const gone = await fakeAgent('n3');
    closedUrl = gone.url;
    await new Promise<void>((r) => gone.server.close(() => r()));
    hangUp = createTcpServer((socket) => socket.destroy());
    await new Promise<void>((r) => hangUp.listen(0, '127.0.0.1', r));
    const targets = new Map([
      ['n1', agent.url],
      ['n3', closedUrl],
      ['n4', `http://127.0.0.1:${(hangUp.address() as AddressInfo).port}`],
    ]);
    srv = await startServer({ nodeProxy: (node, port) => (port === undefined || port === AGENT_PORT ? targets.get(node) : undefined) });
    const nodes = srv.api.resource('v1', 'nodes');
    for (const [name, ip] of [['n1', '10.0.0.11'], ['n2', '10.0.0.12'], ['n3', '10.0.0.13'], ['n4', '10.0.0.14']] as const) {
      nodes.create({ apiVersion: 'v1', kind: 'Node', metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: ip }] } });
    }
  });
  afterAll(async () => {
    await srv?.stop();
    await new Promise<void>((r) => agent?.server.close(() => r()));
    await new Promise<void>((r) => hangUp?.close(() => r()));
  });

  it('forwards a GET with its path and query to what serves the node\'s port, and relays the answer', async () => {
    const r = await kubectl(srv, ['get', '--raw', `/api/v1/nodes/n1:${AGENT_PORT}/proxy/v1/pods?namespace=team-a`]);
    expect(r.stderr).toBe('');
    // The user's credentials stay with the API server.
    expect(JSON.parse(r.stdout)).toEqual({ node: 'n1', items: [{ path: '/v1/pods', query: '?namespace=team-a', authorization: null }] });
    // No port: the lab's choice (here the same agent).
    expect(JSON.parse((await kubectl(srv, ['get', '--raw', '/api/v1/nodes/n1/proxy/v1/services'])).stdout).items[0].path).toBe('/v1/services');
    const notThere = await call(srv.api, 'GET', `/api/v1/nodes/n1:${AGENT_PORT}/proxy/v1/nope`);
    expect(notThere.status).toBe(404);
    expect(notThere.headers['content-type']).toBe('application/json');
    expect(notThere.body).toEqual({ message: 'no such path: /v1/nope' });
  });

  it('an unknown node is NotFound; a node nothing answers for is ServiceUnavailable, as kube-apiserver words them', async () => {
    const unknown = await kubectl(srv, ['get', '--raw', `/api/v1/nodes/nope:${AGENT_PORT}/proxy/v1/pods`]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr.trim()).toBe('Error from server (NotFound): nodes "nope" not found');
    const noAgent = await kubectl(srv, ['get', '--raw', `/api/v1/nodes/n2:${AGENT_PORT}/proxy/v1/pods`]);
    expect(noAgent.stderr.trim()).toBe(`Error from server (ServiceUnavailable): error trying to reach service: dial tcp 10.0.0.12:${AGENT_PORT}: connect: connection refused`);
    const agentDown = await kubectl(srv, ['get', '--raw', `/api/v1/nodes/n3:${AGENT_PORT}/proxy/v1/pods`]);
    expect(agentDown.stderr.trim()).toBe(`Error from server (ServiceUnavailable): error trying to reach service: dial tcp 10.0.0.13:${AGENT_PORT}: connect: connection refused`);
    expect((await kubectl(srv, ['get', '--raw', `/api/v1/nodes/n4:${AGENT_PORT}/proxy/v1/pods`])).stderr.trim()).toBe('Error from server (ServiceUnavailable): error trying to reach service: EOF');
    // A port the lab has nothing on.
    expect((await kubectl(srv, ['get', '--raw', '/api/v1/nodes/n1:9100/proxy/metrics'])).stderr.trim()).toBe('Error from server (ServiceUnavailable): error trying to reach service: dial tcp 10.0.0.11:9100: connect: connection refused');
    const bad = await call(srv.api, 'GET', '/api/v1/nodes/n1:http/proxy/v1/pods');
    expect(bad).toMatchObject({ status: 400, body: { reason: 'BadRequest', message: 'invalid node request "n1:http"' } });
    expect((await call(srv.api, 'POST', `/api/v1/nodes/n1:${AGENT_PORT}/proxy/v1/pods`, {})).status).toBe(405);
  });

  it('is authorized as get on nodes/proxy', async () => {
    const ok = async (args: string[]): Promise<string> => {
      const r = await kubectl(srv, args);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    await ok(['create', 'namespace', 'ops']);
    await ok(['create', 'serviceaccount', 'viewer', '-n', 'ops']);
    const token = (await ok(['create', 'token', 'viewer', '-n', 'ops'])).trim();
    const as = (args: string[]): ReturnType<typeof kubectl> => kubectl(srv, ['--token', token, ...args]);
    const path = `/api/v1/nodes/n1:${AGENT_PORT}/proxy/v1/pods`;
    // Reading Nodes is not reaching them.
    await ok(['create', 'clusterrole', 'node-reader', '--verb=get,list', '--resource=nodes']);
    await ok(['create', 'clusterrolebinding', 'viewer-nodes', '--clusterrole=node-reader', '--serviceaccount=ops:viewer']);
    const denied = await as(['get', '--raw', path]);
    expect(denied.code).toBe(1);
    expect(denied.stderr.trim()).toBe(`Error from server (Forbidden): nodes "n1:${AGENT_PORT}" is forbidden: User "system:serviceaccount:ops:viewer" cannot get resource "nodes/proxy" in API group "" at the cluster scope`);
    await ok(['create', 'clusterrole', 'node-proxy', '--verb=get', '--resource=nodes/proxy']);
    await ok(['create', 'clusterrolebinding', 'viewer-proxy', '--clusterrole=node-proxy', '--serviceaccount=ops:viewer']);
    const allowed = await as(['get', '--raw', path]);
    expect(allowed.stderr).toBe('');
    expect(JSON.parse(allowed.stdout).node).toBe('n1');
  });
});
