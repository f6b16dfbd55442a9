// The agent's CNI endpoint: HTTP/JSON on a unix socket that only root may use. The seine-cni shim
// posts each raw invocation here; every CNI outcome is HTTP 200, other statuses mean a broken request.
import { lstat, mkdir, chmod, rm, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { CNI_ENDPOINT, FORWARDED_ENV, MAX_REQUEST_BODY_BYTES, type CniInvocation, type CniReply } from '../../cni/shim-protocol.js';
import { logger, type Logger } from '../../util/log.js';
import { CniHandler, type CniHandlerOptions } from './handler.js';

export interface CniServerOptions extends CniHandlerOptions {
  socketPath: string;
  /** Bound on a request body; default the largest a shim sends (MAX_REQUEST_BODY_BYTES). */
  maxBodyBytes?: number;
}

class BadRequest extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The body as an invocation; BadRequest (400) when it is not one. */
export function parseInvocation(body: string): CniInvocation {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch (e) {
    throw new BadRequest(400, `body is not JSON: ${(e as Error).message}`);
  }
  const o = raw as Record<string, unknown> | null;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new BadRequest(400, 'body must be a JSON object');
  if (typeof o.command !== 'string') throw new BadRequest(400, 'command: must be a string');
  if (typeof o.stdin !== 'string') throw new BadRequest(400, 'stdin: must be a string');
  const env = o.env as Record<string, unknown> | null;
  if (typeof env !== 'object' || env === null || Array.isArray(env)) throw new BadRequest(400, 'env: must be an object');
  const out: CniInvocation['env'] = {};
  for (const name of FORWARDED_ENV) {
    const v = env[name];
    if (v === undefined) continue;
    if (typeof v !== 'string') throw new BadRequest(400, `env.${name}: must be a string`);
    out[name] = v;
  }
  return { command: o.command, env: out, stdin: o.stdin };
}

/** Whether something accepts connections on the socket (another agent still running). */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class CniServer {
  readonly handler: CniHandler;
  private server: Server | undefined;
  /** Inode of the socket this server created: close() removes only that one. */
  private ino: number | undefined;
  private readonly log: Logger;

  constructor(readonly opts: CniServerOptions) {
    this.log = opts.log ?? logger('cniserver', { socket: opts.socketPath });
    this.handler = new CniHandler({ ...opts, log: this.log });
  }

  get socketPath(): string {
    return this.opts.socketPath;
  }

  /**
   * Listens on the socket (mode 0600). A stale socket file (left by a crashed agent) is removed; a
   * socket something still answers on, or a path that is not a socket, is an error.
   */
  async start(): Promise<void> {
    if (this.server) throw new Error('CNI server already started');
    const path = this.opts.socketPath;
    await mkdir(dirname(path), { recursive: true, mode: 0o755 });
    const existing = await lstat(path).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    if (existing) {
      if (!existing.isSocket()) throw new Error(`CNI socket path ${path} exists and is not a socket`);
      if (await socketAnswers(path)) throw new Error(`CNI socket ${path} is in use (is another seine agent running?)`);
      this.log.info('removing stale CNI socket');
      await rm(path, { force: true });
    }
    const server = createServer((req, res) => void this.serve(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // bind() creates the socket file synchronously inside listen(): the umask keeps it private
      // from the first moment (the chmod below makes sure even if that ever changes).
      const old = process.umask(0o177);
      try {
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      } finally {
        process.umask(old);
      }
    });
    await chmod(path, 0o600);
    this.ino = (await stat(path)).ino;
    server.on('error', (e) => this.log.error({ err: e.message }, 'CNI server error'));
    this.server = server;
    this.log.info({ timeoutMs: this.opts.requestTimeoutMs }, 'CNI server listening');
  }

  /** Stops accepting, lets requests in flight finish (each is bounded by the request timeout), removes the socket. */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
    const now = await stat(this.opts.socketPath).catch(() => undefined);
    if (now && now.ino === this.ino) await rm(this.opts.socketPath, { force: true });
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    try {
      const url = (req.url ?? '').split('?')[0];
      if (url !== CNI_ENDPOINT) throw new BadRequest(404, `no such endpoint ${JSON.stringify(req.url)} (POST ${CNI_ENDPOINT})`);
      if (req.method !== 'POST') throw new BadRequest(405, `${req.method} not allowed (POST ${CNI_ENDPOINT})`);
      const inv = parseInvocation(await this.body(req));
      const reply: CniReply = await this.handler.handle(inv);
      send(200, reply);
    } catch (e) {
      const status = e instanceof BadRequest ? e.status : 500;
      this.log.warn({ status, err: (e as Error).message, method: req.method, url: req.url }, 'bad CNI server request');
      if (!res.headersSent) send(status, { message: (e as Error).message });
      else res.destroy();
    }
  }

  private body(req: IncomingMessage): Promise<string> {
    const max = this.opts.maxBodyBytes ?? MAX_REQUEST_BODY_BYTES;
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > max) {
          reject(new BadRequest(413, `body larger than ${max} bytes`));
          req.resume();
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });
  }
}
