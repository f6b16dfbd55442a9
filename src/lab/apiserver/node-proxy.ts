// kube-apiserver's nodes/proxy subresource: `GET /api/v1/nodes/NAME[:PORT]/proxy/PATH?QUERY` is forwarded to what
// the node serves on PORT (kube: the node's address; no port: the kubelet's), and its answer returned as it came.
// RBAC sees `get` on `nodes/proxy` (request-authz.ts). The lab's node processes do not listen on their node's
// address: the lab says where one is reachable from the API server (NodeProxyTarget). A node nothing answers for
// is a 503 with kube-apiserver's wording (`error trying to reach service: dial tcp ...`).
import { request } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError, errors } from './errors.js';
import type { KubeObject } from './types.js';

/** The base URL (`http://127.0.0.1:PORT`) where `node` serves `port` (undefined: the kubelet's), or undefined if nothing does. */
export type NodeProxyTarget = (node: string, port: number | undefined) => string | undefined;

/** The kubelet's port: where kube-apiserver goes when the request names none. */
const KUBELET_PORT = 10250;
/** A node that accepted the connection but does not answer is given up on after this long. */
const FORWARD_TIMEOUT_MS = 30_000;

const PROXY_PATH = /^\/api\/v1\/nodes\/([^/]+)\/proxy(\/.*)?$/;

/** What a nodes/proxy request names: the node, its port, the path on the node. */
export interface NodeProxyRequest {
  node: string;
  port?: number;
  path: string;
}

/** The request a nodes/proxy path names; undefined for another path. `name:port` only (no scheme prefix). */
export function nodeProxyRequest(pathname: string): NodeProxyRequest | undefined {
  const m = PROXY_PATH.exec(pathname);
  if (!m) return undefined;
  const id = decodeURIComponent(m[1]!);
  const [node = '', port, ...extra] = id.split(':');
  if (!node || extra.length || (port !== undefined && !/^\d{1,5}$/.test(port))) throw errors.badRequest(`invalid node request ${JSON.stringify(id)}`);
  return { node, ...(port !== undefined ? { port: Number(port) } : {}), path: m[2] ?? '/' };
}

const unreachable = (what: string): ApiError => new ApiError(503, 'ServiceUnavailable', `error trying to reach service: ${what}`, {});

/** How Go's dialer would word a failure to reach `address`. */
function dialFailure(e: NodeJS.ErrnoException, address: string): string {
  if (e.code === 'ECONNREFUSED') return `dial tcp ${address}: connect: connection refused`;
  if (e.code === 'ETIMEDOUT') return `dial tcp ${address}: i/o timeout`;
  // Accepted, then closed without an answer (the lab's relay, when nothing listens behind it).
  if (e.code === 'ECONNRESET' || e.message === 'socket hang up') return 'EOF';
  return `dial tcp ${address}: ${e.message}`;
}

/**
 * Forwards a nodes/proxy GET: 404 for a node that does not exist, 503 when the node cannot be reached. Resolves
 * once the node's answer has been relayed; rejects with the ApiError to send before anything was.
 */
export async function proxyToNode(req: IncomingMessage, res: ServerResponse, target: NodeProxyRequest, search: string, nodes: { node(name: string): KubeObject | undefined; target?: NodeProxyTarget }): Promise<void> {
  if (req.method !== 'GET') throw errors.methodNotAllowed();
  const node = nodes.node(target.node);
  if (!node) throw errors.notFound({ group: '', resource: 'nodes' }, target.node);
  const addresses = (node.status as { addresses?: Array<{ type?: string; address?: string }> } | undefined)?.addresses ?? [];
  const ip = addresses.find((a) => a.type === 'InternalIP')?.address ?? addresses[0]?.address ?? target.node;
  const address = `${ip}:${target.port ?? KUBELET_PORT}`;
  const base = nodes.target?.(target.node, target.port);
  if (!base) throw unreachable(`dial tcp ${address}: connect: connection refused`);
  return await new Promise((resolve, reject) => {
    const cut = (): void => {
      res.destroy();
      resolve();
    };
    const out = request(`${base}${target.path}${search}`, { method: 'GET', agent: false, headers: { accept: req.headers.accept ?? '*/*' }, timeout: FORWARD_TIMEOUT_MS }, (answer) => {
      const type = answer.headers['content-type'];
      res.writeHead(answer.statusCode ?? 502, { ...(type ? { 'Content-Type': type } : {}), 'Cache-Control': 'no-cache, private' });
      answer.pipe(res);
      answer.on('end', resolve);
      answer.on('error', cut);
    });
    out.on('timeout', () => out.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    out.on('error', (e: NodeJS.ErrnoException) => (res.headersSent ? cut() : reject(unreachable(dialFailure(e, address)))));
    out.end();
  });
}
