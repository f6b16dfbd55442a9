import { rmSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/** What a process reports on its health endpoint. */
export interface HealthSource {
  /** `/healthz` and `/livez`: false when a restart is the cure. */
  live(): boolean;
  /** `/readyz`: the process does its job. */
  ready(): boolean;
  /** `/metrics`, in the Prometheus text format. */
  registry: Registry;
}

/** Where the endpoint listens: a TCP port, or a unix socket (reachable from other network namespaces). */
export type HealthListen = { port: number; host?: string } | { path: string };

/** A JSON answer of a read-only API mounted on the endpoint. */
export interface JsonAnswer {
  status: number;
  body: unknown;
}

/** Answers a GET of a path under the prefix it is mounted at (the whole path, the query apart). */
export type JsonHandler = (path: string, query: URLSearchParams) => JsonAnswer | Promise<JsonAnswer>;

/**
 * The health endpoint of a Seine process (agent, controller): `/healthz`, `/livez`, `/readyz` and `/metrics`, and
 * read-only JSON APIs mounted under a path prefix (GET only).
 */
export class HealthServer {
  private readonly servers: Server[] = [];
  private readonly mounts: Array<{ prefix: string; handler: JsonHandler }> = [];

  constructor(private readonly source: HealthSource) {}

  /** Serves every path under `prefix` (e.g. `/v1/`) with `handler`; other methods than GET are refused. */
  mount(prefix: string, handler: JsonHandler): void {
    this.mounts.push({ prefix, handler });
  }

  async listen(at: HealthListen): Promise<void> {
    const server = createServer((req, res) => {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      const text = (code: number, body: string): void => void res.writeHead(code, { 'content-type': 'text/plain' }).end(body);
      const mounted = this.mounts.find((m) => path.startsWith(m.prefix));
      if (mounted) {
        void serveJson(req.method ?? 'GET', res, () => mounted.handler(path, new URLSearchParams(q < 0 ? '' : url.slice(q + 1))));
      } else if (path === '/healthz' || path === '/livez') {
        if (this.source.live()) text(200, 'ok\n');
        else text(503, 'unhealthy\n');
      } else if (path === '/readyz') {
        if (this.source.ready()) text(200, 'ready\n');
        else text(503, 'not ready\n');
      } else if (path === '/metrics') {
        this.source.registry
          .metrics()
          .then((body) => res.writeHead(200, { 'content-type': this.source.registry.contentType }).end(body))
          .catch((e: unknown) => text(500, `${e instanceof Error ? e.message : String(e)}\n`));
      } else {
        text(404, 'not found\n');
      }
    });
    // A socket left by an earlier run of the process would refuse the bind.
    if ('path' in at) rmSync(at.path, { force: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const done = (): void => {
        server.off('error', reject);
        resolve();
      };
      if ('path' in at) server.listen(at.path, done);
      else server.listen(at.port, at.host, done);
    });
    this.servers.push(server);
  }

  /** The first TCP port listened on (0 when none). */
  get port(): number {
    for (const s of this.servers) {
      const a = s.address();
      if (a && typeof a === 'object') return (a as AddressInfo).port;
    }
    return 0;
  }

  async close(): Promise<void> {
    await Promise.all(this.servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

async function serveJson(method: string, res: ServerResponse, answer: () => JsonAnswer | Promise<JsonAnswer>): Promise<void> {
  const json = (a: JsonAnswer, headers: Record<string, string> = {}): void => void res.writeHead(a.status, { 'content-type': 'application/json', ...headers }).end(`${JSON.stringify(a.body)}\n`);
  if (method !== 'GET') return json({ status: 405, body: { message: `${method} is not allowed: this API is read-only` } }, { allow: 'GET' });
  try {
    json(await answer());
  } catch (e) {
    json({ status: 500, body: { message: e instanceof Error ? e.message : String(e) } });
  }
}
