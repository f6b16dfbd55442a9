// The controller's side of the policy channel: each agent holds one long request, GET /v1/shares/<node>, and
// receives its node's share as JSON lines: a snapshot first, then an update after every burst of changes that
// touched the node, and a heartbeat while nothing changes (so that a dead stream is noticed).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { logger, type Logger } from '../../util/log.js';
import type { NodeShares } from './shares.js';

export const HEARTBEAT_MS = 10_000;
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
  /** Subscribes to the nodes whose share changed; returns the unsubscribe. */
  onChange: (listener: (nodes: ReadonlySet<string>) => void) => () => void;
  /** Whether the computation has listed everything yet (until then a connecting agent is told to come back). */
  ready: () => boolean;
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

  constructor(private readonly opts: ShareServerOptions) {
    this.log = opts.log ?? logger('controller.policy-server');
  }

  /** Listens on `host:port` (port 0: any); resolves with the port. */
  async listen(host: string, port: number): Promise<number> {
    this.server = createServer((req, res) => this.handle(req, res));
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

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const m = /^\/v1\/shares\/([^/?]+)$/.exec(req.url ?? '');
    if (req.method !== 'GET' || !m) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    const node = decodeURIComponent(m[1]!);
    if (!NODE_NAME.test(node)) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end(`invalid node name ${JSON.stringify(node)}\n`);
      return;
    }
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
