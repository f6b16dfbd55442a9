import { createConnection, type Socket } from 'node:net';
import { OvsdbProtocolError } from './errors.js';
import { JsonStreamSplitter } from './framing.js';

export type Remote = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/** Parses an OVS active remote: `unix:PATH`, `tcp:IP:PORT` or `tcp:[IPv6]:PORT`. */
export function parseRemote(remote: string): Remote {
  if (remote.startsWith('unix:')) {
    const path = remote.slice('unix:'.length);
    if (!path) throw new TypeError(`remote ${remote}: empty socket path`);
    return { kind: 'unix', path };
  }
  if (remote.startsWith('tcp:')) {
    const rest = remote.slice('tcp:'.length);
    const m = /^\[([^\]]+)\]:(\d+)$/.exec(rest) ?? /^([^:[\]]+):(\d+)$/.exec(rest);
    const port = m ? Number(m[2]) : NaN;
    if (!m || !(port > 0 && port < 65536)) throw new TypeError(`remote ${remote}: expected tcp:HOST:PORT`);
    return { kind: 'tcp', host: m[1]!, port };
  }
  throw new TypeError(`remote ${remote}: only unix: and tcp: are supported`);
}

export function formatRemote(r: Remote): string {
  return r.kind === 'unix' ? `unix:${r.path}` : `tcp:${r.host.includes(':') ? `[${r.host}]` : r.host}:${r.port}`;
}

export interface TransportHandlers {
  message(msg: unknown): void;
  /** Called once, when the connection is gone for whatever reason. */
  closed(reason: string): void;
}

/** One connected stream carrying OVSDB JSON-RPC messages. */
export class Transport {
  private readonly splitter = new JsonStreamSplitter();
  private done = false;
  private readonly socketClosed: Promise<void>;

  private constructor(
    private readonly socket: Socket,
    private readonly handlers: TransportHandlers,
  ) {
    this.socketClosed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (e) => this.finish(e.message));
    socket.on('end', () => this.finish('closed by peer'));
    socket.on('close', () => this.finish('closed'));
  }

  /** Connects; rejects after `timeoutMs`, on the first socket error, or when `signal` aborts. */
  static connect(remote: Remote, timeoutMs: number, handlers: TransportHandlers, signal?: AbortSignal): Promise<Transport> {
    return new Promise((resolve, reject) => {
      const socket = remote.kind === 'unix' ? createConnection({ path: remote.path }) : createConnection({ host: remote.host, port: remote.port });
      const fail = (e: Error): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        socket.destroy();
        reject(e);
      };
      const onAbort = (): void => fail(new Error('connect aborted'));
      const timer = setTimeout(() => fail(new Error(`connect timed out after ${timeoutMs} ms`)), timeoutMs);
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      socket.once('error', fail);
      socket.once('connect', () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        socket.off('error', fail);
        if (remote.kind === 'tcp') socket.setNoDelay(true);
        resolve(new Transport(socket, handlers));
      });
    });
  }

  get closed(): boolean {
    return this.done;
  }

  send(msg: unknown): void {
    if (this.done) return;
    this.socket.write(JSON.stringify(msg));
  }

  /** Drops the connection; resolves once the socket is fully closed. */
  close(reason = 'closed locally'): Promise<void> {
    this.finish(reason);
    return this.socketClosed;
  }

  private receive(chunk: Buffer): void {
    if (this.done) return;
    try {
      for (const text of this.splitter.push(chunk)) {
        let msg: unknown;
        try {
          msg = JSON.parse(text);
        } catch (e) {
          throw new OvsdbProtocolError(`invalid JSON from server: ${(e as Error).message}`);
        }
        this.handlers.message(msg);
        if (this.done) return;
      }
    } catch (e) {
      this.finish(e instanceof Error ? e.message : String(e));
    }
  }

  private finish(reason: string): void {
    if (this.done) return;
    this.done = true;
    this.socket.destroy();
    this.handlers.closed(reason);
  }
}
