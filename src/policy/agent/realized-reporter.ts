// Tells the controller which policies this node has installed (uid -> generation), so that it can say how far each
// policy is realized. The latest report wins: reports are coalesced, retried with backoff, and sent again after
// every new share snapshot (a restarted controller knows nothing of what was reported to the one before).
import { request } from 'node:https';
import { logger, type Logger } from '../../util/log.js';
import type { ControllerEndpoint } from '../channel/discovery.js';

const DELAY_MS = 100;
const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 10_000;
const TIMEOUT_MS = 10_000;

export interface RealizedReporterOptions {
  endpoint: () => Promise<ControllerEndpoint | undefined>;
  token: () => Promise<string | undefined>;
  node: string;
  log?: Logger;
}

export class RealizedReporter {
  private readonly log: Logger;
  private latest?: string;
  private sent?: string;
  private timer?: NodeJS.Timeout;
  private sending = false;
  private backoffMs = MIN_BACKOFF_MS;
  private stopped = false;

  constructor(private readonly opts: RealizedReporterOptions) {
    this.log = opts.log ?? logger('policy.realized', { node: opts.node });
  }

  /** What is installed now; sent soon unless it is what was sent last. */
  set(policies: Readonly<Record<string, number>>): void {
    this.latest = JSON.stringify({ policies });
    if (this.latest !== this.sent) this.schedule(DELAY_MS);
  }

  /** Sends the latest report again (the controller may be a new one). */
  resend(): void {
    this.sent = undefined;
    if (this.latest) this.schedule(DELAY_MS);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    if (this.stopped || this.timer || this.sending) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.send();
    }, ms);
  }

  private async send(): Promise<void> {
    const body = this.latest;
    if (this.stopped || body === undefined || body === this.sent) return;
    this.sending = true;
    try {
      const [endpoint, token] = await Promise.all([this.opts.endpoint(), this.opts.token()]);
      if (!endpoint) throw new Error('no controller endpoint yet');
      await put(`${endpoint.url}/v1/realized/${encodeURIComponent(this.opts.node)}`, endpoint.ca, token, body);
      this.sent = body;
      this.backoffMs = MIN_BACKOFF_MS;
    } catch (e) {
      this.log.debug({ err: e instanceof Error ? e.message : String(e), retryInMs: this.backoffMs }, 'realization report not sent; retrying');
      this.sending = false;
      this.schedule(this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
      return;
    }
    this.sending = false;
    if (this.latest !== this.sent) this.schedule(DELAY_MS);
  }
}

function put(url: string, ca: string, token: string | undefined, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'PUT', ca, timeout: TIMEOUT_MS, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 204 ? resolve() : reject(new Error(`controller answered ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}
