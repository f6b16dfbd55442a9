// The controller's side of the policy channel: each agent holds one long request, GET /v1/shares/<node>, and
// receives its node's share as JSON lines: a snapshot first, then an update after every burst of changes that
// touched the node, and a heartbeat while nothing changes (so that a dead stream is noticed). It speaks HTTPS only,
// and serves only agents whose bearer token authenticates as one of the agent users. The same server answers users'
// questions about where policies are realized (policy-api.ts), with their own credentials.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { logger, type Logger } from '../../util/log.js';
import { PolicyApi } from './policy-api.js';
import type { NodeShares } from './shares.js';

export const HEARTBEAT_MS = 10_000;
/** A node's realization report: a uid and a generation per policy, well under this for any node. */
const MAX_REPORT_BYTES = 16 << 20;
const NODE_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** One line of the stream. `messages` is a JSON array of `ShareMessage`. */
export type ShareLine = { type: 'snapshot'; messages: unknown[] } | { type: 'update'; messages: unknown[] } | { type: 'heartbeat' };

interface Session {
  id: string;
  node: string;
  res: ServerResponse;
}

export interface ShareServerOptions {
  shares: NodeShares;
  /** The serving key and certificate (PEM). */
  tls: { key: string; cert: string };
  /** The user a bearer token authenticates as; undefined for a token that does not; throws when it cannot tell. */
  authenticate: (token: string) => Promise<string | undefined>;
  /** The users allowed to read shares (the agents' ServiceAccount). */
  agentUsers: readonly string[];
  /** An agent's report of the policies it has installed (policy uid -> generation). */
  onRealized?: (node: string, policies: Readonly<Record<string, number>>) => void;
  /** Subscribes to the nodes whose share changed; returns the unsubscribe. */
  onChange: (listener: (nodes: ReadonlySet<string>) => void) => () => void;
  /** Whether the computation has listed everything yet (until then a connecting agent is told to come back). */
  ready: () => boolean;
  /** The users' read API (GET /v1/policies), which authenticates and authorizes users itself; none: not served. */
  policies?: PolicyApi;
  log?: Logger;
  heartbeatMs?: number;
}

export class ShareServer {
  private readonly log: Logger;
  private readonly sessions = new Map<string, Session>();
  private server?: Server;
  private unsubscribe?: () => void;
  private heartbeat?: NodeJS.Timeout;
  private serial = 0;
  private readonly agentUsers: ReadonlySet<string>;
  private readonly refusedUsers = new Set<string>();

  constructor(private readonly opts: ShareServerOptions) {
    this.log = opts.log ?? logger('controller.policy-server');
    this.agentUsers = new Set(opts.agentUsers);
  }

  /** Listens on `host:port` (port 0: any); resolves with the port. */
  async listen(host: string, port: number): Promise<number> {
    this.server = createServer({ key: this.opts.tls.key, cert: this.opts.tls.cert }, (req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        this.log.error({ err: String(e) }, 'share request failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
    this.unsubscribe = this.opts.onChange((nodes) => this.changed(nodes));
    this.heartbeat = setInterval(() => {
      for (const s of this.sessions.values()) this.write(s, { type: 'heartbeat' });
    }, this.opts.heartbeatMs ?? HEARTBEAT_MS);
    this.heartbeat.unref();
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.unsubscribe?.();
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const s of this.sessions.values()) s.res.end();
    this.sessions.clear();
    if (this.server) {
      this.server.closeAllConnections();
      await new Promise<void>((r) => this.server!.close(() => r()));
    }
  }

  get connections(): number {
    return this.sessions.size;
  }

  /** The authenticated user of a request, or the status and text that refuse it. */
  private async authorize(req: IncomingMessage): Promise<{ user: string } | { status: number; text: string; headers?: Record<string, string> }> {
    const h = req.headers.authorization;
    const token = h?.startsWith('Bearer ') ? h.slice('Bearer '.length).trim() : '';
    if (!token) return { status: 401, text: 'a bearer token is required\n', headers: { 'www-authenticate': 'Bearer' } };
    let user: string | undefined;
    try {
      user = await this.opts.authenticate(token);
    } catch (e) {
      this.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'cannot review an agent\'s token');
      return { status: 503, text: 'cannot authenticate now\n', headers: { 'retry-after': '1' } };
    }
    if (user === undefined) return { status: 401, text: 'the token does not authenticate\n', headers: { 'www-authenticate': 'Bearer' } };
    if (!this.agentUsers.has(user)) {
      // Once per user: a misconfigured agent retries for as long as it runs.
      if (!this.refusedUsers.has(user) && this.refusedUsers.size < 1000) {
        this.refusedUsers.add(user);
        this.log.warn({ user, agentUsers: [...this.agentUsers] }, 'a user that is not an agent asked for a share (refused)');
      }
      return { status: 403, text: `user ${JSON.stringify(user)} may not read policy shares\n` };
    }
    return { user };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.opts.policies && PolicyApi.handles(req)) return this.opts.policies.handle(req, res);
    const auth = await this.authorize(req);
    if (!('user' in auth)) {
      res.writeHead(auth.status, { 'content-type': 'text/plain', ...auth.headers }).end(auth.text);
      return;
    }
    if (req.destroyed) return;
    const m = /^\/v1\/(shares|realized)\/([^/?]+)$/.exec(req.url ?? '');
    const route = m && req.method === (m[1] === 'shares' ? 'GET' : 'PUT') ? m[1] : undefined;
    if (!route) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    const node = decodeURIComponent(m![2]!);
    if (!NODE_NAME.test(node)) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end(`invalid node name ${JSON.stringify(node)}\n`);
      return;
    }
    if (route === 'realized') return this.realized(req, res, node);
    if (!this.opts.ready()) {
      res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1' }).end('policies not computed yet\n');
      return;
    }
    const session: Session = { id: `${node}#${++this.serial}`, node, res };
    this.sessions.set(session.id, session);
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    const share = this.opts.shares.snapshot(node, session.id);
    this.write(session, { type: 'snapshot', messages: [] }, share.json);
    this.log.info({ node, messages: share.count }, 'agent connected; share sent');
    const gone = (): void => {
      if (!this.sessions.delete(session.id)) return;
      this.opts.shares.forget(session.id);
      this.log.info({ node }, 'agent disconnected');
    };
    req.on('close', gone);
    res.on('close', gone);
  }

  /** PUT /v1/realized/<node>: what the node's agent has installed, `{"policies": {uid: generation}}`. */
  private async realized(req: IncomingMessage, res: ServerResponse, node: string): Promise<void> {
    let body = '';
    req.setEncoding('utf8');
    for await (const chunk of req) {
      body += chunk as string;
      if (body.length > MAX_REPORT_BYTES) {
        res.writeHead(413, { 'content-type': 'text/plain' }).end('report too large\n');
        return;
      }
    }
    let policies: unknown;
    try {
      policies = (JSON.parse(body) as { policies?: unknown }).policies;
    } catch {
      policies = undefined;
    }
    if (!policies || typeof policies !== 'object' || Array.isArray(policies) || !Object.values(policies).every((g) => Number.isInteger(g))) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('expected {"policies": {"<uid>": <generation>}}\n');
      return;
    }
    this.opts.onRealized?.(node, policies as Record<string, number>);
    res.writeHead(204).end();
  }

  private changed(nodes: ReadonlySet<string>): void {
    for (const s of this.sessions.values()) {
      if (!nodes.has(s.node)) continue;
      const share = this.opts.shares.update(s.node, s.id);
      if (share.count) this.write(s, { type: 'update', messages: [] }, share.json);
    }
  }

  /** One JSON line; `messagesJson` (already encoded) replaces the line's empty `messages`. */
  private write(s: Session, line: ShareLine, messagesJson?: string): void {
    const text = messagesJson === undefined ? JSON.stringify(line) : JSON.stringify(line).replace('"messages":[]', `"messages":${messagesJson}`);
    s.res.write(`${text}\n`);
  }
}
