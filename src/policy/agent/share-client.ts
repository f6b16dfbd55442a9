// The agent's side of the policy channel: one long request to the controller for the node's share, applied to
// the share store line by line; reconnects (with backoff) when the stream ends, fails or goes silent, and then
// starts from the snapshot the controller sends first. The connection is HTTPS to the certificate the controller
// published (nothing else is trusted), authenticated by the agent's bearer token.
import type { ClientRequest, IncomingMessage } from 'node:http';
import { get } from 'node:https';
import { logger, type Logger } from '../../util/log.js';
import type { ControllerEndpoint } from '../channel/discovery.js';
import { HEARTBEAT_MS } from '../controller/share-server.js';
import type { ShareMessage } from '../controller/shares.js';
import type { ShareStore } from './share-store.js';

const MIN_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 5000;

export interface ShareClientOptions {
  /** The controller's base URL and certificate, looked up again before every connection. */
  endpoint: () => Promise<ControllerEndpoint | undefined>;
  /** The bearer token the controller authenticates the agent by, asked for before every connection. */
  token: () => Promise<string | undefined>;
  node: string;
  store: ShareStore;
  /** After each snapshot or update has been applied (and persisted). */
  onShare: () => void;
  log?: Logger;
  /** A request unanswered, or a stream without any line, for this long is taken as dead (default: three heartbeats). */
  silenceMs?: number;
}

export class ShareClient {
  private readonly log: Logger;
  private stopped = false;
  private req?: ClientRequest;
  private retry?: NodeJS.Timeout;
  private watchdog?: NodeJS.Timeout;
  private backoffMs = MIN_BACKOFF_MS;
  /** The controller's last refusal (401/403), so that a refusal is logged once, not on every retry. */
  private refused: number | undefined;
  /** Snapshots received (each connection starts with one). */
  snapshots = 0;

  constructor(private readonly opts: ShareClientOptions) {
    this.log = opts.log ?? logger('policy.share-client', { node: opts.node });
  }

  start(): void {
    this.stopped = false;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    if (this.watchdog) clearTimeout(this.watchdog);
    this.req?.destroy();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    let endpoint: ControllerEndpoint | undefined;
    let token: string | undefined;
    try {
      [endpoint, token] = await Promise.all([this.opts.endpoint(), this.opts.token()]);
    } catch (e) {
      if (!this.stopped) this.again(undefined, `cannot look up the controller: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    if (this.stopped) return;
    if (!endpoint) return this.again(undefined, 'no controller endpoint yet');
    const url = `${endpoint.url}/v1/shares/${encodeURIComponent(this.opts.node)}`;
    // No agent: the stream holds its connection for as long as it lasts, there is nothing to pool.
    const req = get(url, { ca: endpoint.ca, agent: false, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => this.stream(req, res));
    this.req = req;
    req.on('error', (e) => this.again(req, `connection failed: ${e.message}`));
    // A controller that takes the request and never answers (its TokenReview stuck) counts as silent too.
    this.alive(req);
  }

  private stream(req: ClientRequest, res: IncomingMessage): void {
    const status = res.statusCode ?? 0;
    if (status === 401 || status === 403) this.refusedWith(status);
    if (status !== 200) {
      res.resume();
      this.again(req, `controller answered ${status}`);
      return;
    }
    if (this.refused !== undefined) this.log.info('the controller accepts this agent again');
    this.refused = undefined;
    let buffer = '';
    this.alive(req);
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      if (req !== this.req) return;
      this.alive(req);
      buffer += chunk;
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.trim()) this.line(req, line);
      }
    });
    res.on('end', () => this.again(req, 'stream ended'));
    res.on('error', (e) => this.again(req, `stream failed: ${e.message}`));
  }

  private line(req: ClientRequest, text: string): void {
    let parsed: { type?: string; messages?: ShareMessage[] };
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      this.again(req, 'unreadable line from the controller');
      return;
    }
    if (parsed.type === 'heartbeat') return;
    if ((parsed.type !== 'snapshot' && parsed.type !== 'update') || !Array.isArray(parsed.messages)) return;
    this.opts.store.apply(parsed.messages, parsed.type === 'snapshot');
    if (parsed.type === 'snapshot') {
      this.snapshots++;
      this.backoffMs = MIN_BACKOFF_MS;
      this.log.info({ ...this.opts.store.size }, 'policy share received');
    }
    this.opts.onShare();
  }

  private refusedWith(status: 401 | 403): void {
    if (this.refused === status) return;
    this.refused = status;
    const why = status === 401 ? 'the controller does not accept this agent\'s token' : 'the controller does not let this agent\'s user read shares (is it in the controller\'s policy.agentUsers?)';
    this.log.warn({ status }, `${why}; retrying`);
  }

  private alive(req: ClientRequest): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => this.again(req, 'stream silent'), this.opts.silenceMs ?? 3 * HEARTBEAT_MS);
    this.watchdog.unref();
  }

  /** Drops `req` (if it is still the current one) and reconnects after a backoff. */
  private again(req: ClientRequest | undefined, why: string): void {
    if (this.stopped || req !== this.req) return;
    this.req = undefined;
    if (this.watchdog) clearTimeout(this.watchdog);
    req?.destroy();
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
    this.log.debug({ why, delayMs: delay }, 'reconnecting to the controller');
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.connect();
    }, delay);
  }
}
