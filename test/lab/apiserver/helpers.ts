import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiServer, type ApiServerOptions } from '../../../src/lab/apiserver/index.js';
import { eventually as eventuallyShared, sleep } from '../../../src/util/wait.js';

/** A server in its own temp dir (kubeconfig, kubectl cache, data file); `stop()` removes it all. */
export interface TestServer {
  api: ApiServer;
  dir: string;
  kubeconfig: string;
  /** Stops the server but keeps the dir (for restarts from the data file). */
  close(): Promise<void>;
  stop(): Promise<void>;
}

export async function startServer(opts: ApiServerOptions = {}, dir = mkdtempSync(join(tmpdir(), 'seine-apiserver-'))): Promise<TestServer> {
  const api = await ApiServer.start({ token: 'test-token', ...opts });
  const kubeconfig = join(dir, 'kubeconfig');
  api.writeKubeconfig(kubeconfig);
  return {
    api,
    dir,
    kubeconfig,
    close: () => api.close(),
    async stop() {
      await api.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Response bodies are whatever JSON the server sent; tests poke at them freely.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Json;
  text: string;
}

/** One request to the plain-HTTP endpoint with the test token (unless headers say otherwise). */
export function call(
  api: ApiServer,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const req = request(
      `${api.url}${path}`,
      {
        method,
        headers: {
          authorization: `Bearer ${api.token}`,
          // Explicit length: Node sends DELETE bodies neither chunked nor sized otherwise.
          ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } : {}),
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed, text });
        });
      },
    );
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

export interface WatchStream {
  events: Array<{ type: string; object: Json }>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  /** Waits until `n` events have arrived (or the stream ends). */
  waitFor(n: number, timeoutMs?: number): Promise<Array<{ type: string; object: Json }>>;
  close(): void;
  status: Promise<number>;
}

/** Opens `?watch=true` on a collection path and collects the JSON lines. */
export function watchStream(api: ApiServer, path: string, headers: Record<string, string> = {}): WatchStream {
  const events: Array<{ type: string; object: Json }> = [];
  const waiters: Array<() => void> = [];
  let endResolve: () => void = () => undefined;
  let statusResolve: (n: number) => void = () => undefined;
  const ended = new Promise<void>((r) => (endResolve = r));
  const status = new Promise<number>((r) => (statusResolve = r));
  let done = false;
  const notify = (): void => waiters.splice(0).forEach((w) => w());
  const sep = path.includes('?') ? '&' : '?';
  const req = request(`${api.url}${path}${sep}watch=true`, { headers: { authorization: `Bearer ${api.token}`, ...headers } }, (res) => {
    statusResolve(res.statusCode ?? 0);
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => {
      buf += c;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) events.push(JSON.parse(line));
      }
      notify();
    });
    const finish = (): void => {
      done = true;
      endResolve();
      notify();
    };
    res.on('end', finish);
    res.on('close', finish);
  });
  req.on('error', () => {
    done = true;
    endResolve();
    notify();
  });
  req.end();
  return {
    events,
    ended,
    status,
    close: () => req.destroy(),
    waitFor(n, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${n} watch events; got ${JSON.stringify(events.map((e) => e.type))}`)), timeoutMs);
        const check = (): void => {
          if (events.length >= n || done) {
            clearTimeout(timer);
            resolve(events.slice(0, n));
          } else waiters.push(check);
        };
        check();
      });
    },
  };
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

const KUBECTL = process.env.KUBECTL ?? 'kubectl';

/** Runs the real kubectl against the server with a private kubeconfig and discovery cache. */
export function kubectl(srv: TestServer, args: string[], input?: string): Promise<KubectlResult> {
  return new Promise((resolve) => {
    const child = execFile(
      KUBECTL,
      ['--kubeconfig', srv.kubeconfig, '--cache-dir', join(srv.dir, 'kube-cache'), ...args],
      { timeout: 30_000, env: { ...process.env, KUBECONFIG: srv.kubeconfig } },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() });
      },
    );
    // A command that exits before reading its input makes the write fail with EPIPE: its exit code tells.
    if (input !== undefined) child.stdin?.on('error', () => undefined).end(input);
  });
}

/** Polls until fn returns something truthy, and returns it (a generous bound: CI machines are busy). */
export function eventually<T>(fn: () => T | Promise<T>, timeoutMs = 30_000, what = 'condition'): Promise<T> {
  return eventuallyShared(what, async (saw) => {
    const v = await fn();
    saw(v);
    return v ? v : undefined;
  }, timeoutMs, 25);
}

export { sleep };
