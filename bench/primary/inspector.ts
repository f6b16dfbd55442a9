// Just enough of the Chrome DevTools Protocol to force a full GC in another Node process and read its
// process.memoryUsage(): SIGUSR1 opens its inspector on 127.0.0.1:9229, then one WebSocket session. A GC on
// demand lets two RSS readings be compared; otherwise they differ by whatever garbage V8 has not collected.
// Node 20 has no WebSocket client without a flag, hence the minimal RFC 6455 client below.
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { createServer, type Socket } from 'node:net';

export const INSPECTOR_PORT = 9229;

/** Whether 127.0.0.1:port can be bound now (the target's inspector would fail if it is taken). */
export function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const srv = createServer();
    srv.once('error', () => res(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => res(true)));
  });
}

function getJson(url: string): Promise<unknown> {
  return new Promise((res, rej) => {
    const req = request(url, (r) => {
      let body = '';
      r.on('data', (b: Buffer) => (body += b.toString()));
      r.on('end', () => {
        try {
          res(JSON.parse(body));
        } catch (e) {
          rej(e as Error);
        }
      });
    });
    req.on('error', rej);
    req.setTimeout(2000, () => req.destroy(new Error(`no answer from ${url}`)));
    req.end();
  });
}

function frame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4);
  const len = payload.length;
  let head: Buffer;
  if (len < 126) head = Buffer.from([0x80 | opcode, 0x80 | len]);
  else if (len < 65536) head = Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 255]);
  else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | opcode;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i]! ^= mask[i % 4]!;
  return Buffer.concat([head, mask, body]);
}

/** One CDP session over a WebSocket; text messages only (all the inspector sends). */
export class CdpSession {
  private buf = Buffer.alloc(0);
  private partial: Buffer[] = [];
  private nextId = 1;
  private readonly waiting = new Map<number, { res: (v: unknown) => void; rej: (e: Error) => void }>();

  private constructor(private readonly socket: Socket) {
    socket.on('data', (b: Buffer) => this.onData(b));
    socket.on('error', (e) => this.failAll(e));
    socket.on('close', () => this.failAll(new Error('inspector connection closed')));
  }

  /** Sends SIGUSR1 to `pid`, waits for its inspector and connects to its first target. */
  static async attach(pid: number, timeoutMs = 10_000): Promise<CdpSession> {
    process.kill(pid, 'SIGUSR1');
    const deadline = Date.now() + timeoutMs;
    let targets: Array<{ webSocketDebuggerUrl?: string }> | undefined;
    while (!targets?.[0]?.webSocketDebuggerUrl) {
      if (Date.now() > deadline) throw new Error(`no inspector on 127.0.0.1:${INSPECTOR_PORT} after SIGUSR1 to ${pid}`);
      await new Promise((r) => setTimeout(r, 200));
      targets = (await getJson(`http://127.0.0.1:${INSPECTOR_PORT}/json/list`).catch(() => undefined)) as typeof targets;
    }
    const url = new URL(targets[0].webSocketDebuggerUrl);
    const socket = await new Promise<Socket>((res, rej) => {
      const req = request({ host: url.hostname, port: url.port, path: url.pathname, headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Key': randomBytes(16).toString('base64'), 'Sec-WebSocket-Version': '13' } });
      req.on('upgrade', (_res, sock: Socket, head: Buffer) => {
        if (head.length) sock.unshift(head);
        res(sock);
      });
      req.on('response', (r) => rej(new Error(`inspector refused the WebSocket upgrade: HTTP ${r.statusCode}`)));
      req.on('error', rej);
      req.end();
    });
    return new CdpSession(socket);
  }

  call(method: string, params: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((res, rej) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        rej(new Error(`${method}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, { res: (v) => (clearTimeout(timer), res(v)), rej: (e) => (clearTimeout(timer), rej(e)) });
      this.socket.write(frame(1, Buffer.from(JSON.stringify({ id, method, params }))));
    });
  }

  /** Evaluates an expression in the target's main context and returns its (JSON-serialisable) value. */
  async evaluate<T>(expression: string): Promise<T> {
    const r = (await this.call('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true })) as { result: { value: T }; exceptionDetails?: { text: string } };
    if (r.exceptionDetails) throw new Error(`evaluation failed: ${r.exceptionDetails.text}`);
    return r.result.value;
  }

  /** A full, compacting GC in the target. */
  async collectGarbage(): Promise<void> {
    await this.call('HeapProfiler.collectGarbage');
  }

  close(): void {
    this.socket.end(frame(8, Buffer.alloc(0)));
    this.socket.destroy();
  }

  private failAll(e: Error): void {
    for (const w of this.waiting.values()) w.rej(e);
    this.waiting.clear();
  }

  private onData(b: Buffer): void {
    this.buf = Buffer.concat([this.buf, b]);
    for (;;) {
      if (this.buf.length < 2) return;
      const fin = (this.buf[0]! & 0x80) !== 0;
      const opcode = this.buf[0]! & 0x0f;
      let len = this.buf[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      if (this.buf.length < off + len) return;
      const payload = this.buf.subarray(off, off + len);
      this.buf = this.buf.subarray(off + len);
      if (opcode === 8) {
        this.socket.destroy();
        return;
      }
      if (opcode !== 0 && opcode !== 1) continue; // ping/pong/binary: not used by the inspector
      this.partial.push(Buffer.from(payload));
      if (!fin) continue;
      const msg = JSON.parse(Buffer.concat(this.partial).toString('utf8')) as { id?: number; result?: unknown; error?: { message: string } };
      this.partial = [];
      const w = msg.id !== undefined ? this.waiting.get(msg.id) : undefined;
      if (!w) continue; // an event
      this.waiting.delete(msg.id!);
      if (msg.error) w.rej(new Error(msg.error.message));
      else w.res(msg.result);
    }
  }
}
