// The shim's HTTP/1.1 client: one POST per connection (Connection: close) on a unix socket. A few
// lines over node:net instead of node:http, whose client costs ~8 ms of start-up on every exec.

export interface HttpReply {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string>;
  body: string;
}

/** The connection failed or was closed without an answer; `code` as node's socket errors. */
export class HttpConnectionError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'HttpConnectionError';
  }
}

/** The answer was not HTTP. */
export class HttpProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HttpProtocolError';
  }
}

const HEAD_END = Buffer.from('\r\n\r\n');

/** Body of a chunked message once complete, else undefined. */
function dechunk(buf: Buffer): Buffer | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', at);
    if (eol < 0) return undefined;
    const size = Number.parseInt(buf.subarray(at, eol).toString('latin1').split(';')[0]!.trim(), 16);
    if (!Number.isFinite(size) || size < 0) throw new HttpProtocolError('bad chunk size');
    if (size === 0) return Buffer.concat(parts);
    if (buf.length < eol + 2 + size + 2) return undefined;
    parts.push(buf.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

/** The reply once `buf` holds all of it (or `ended`: the peer closed), else undefined. */
export function parseReply(buf: Buffer, ended: boolean): HttpReply | undefined {
  const headEnd = buf.indexOf(HEAD_END);
  if (headEnd < 0) {
    if (ended) throw new HttpProtocolError(`incomplete HTTP answer: ${JSON.stringify(buf.toString('latin1').slice(0, 200))}`);
    return undefined;
  }
  const [statusLine, ...lines] = buf.subarray(0, headEnd).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '');
  if (!m) throw new HttpProtocolError(`not an HTTP answer: ${JSON.stringify(statusLine)}`);
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const colon = l.indexOf(':');
    if (colon > 0) headers[l.slice(0, colon).trim().toLowerCase()] = l.slice(colon + 1).trim();
  }
  const rest = buf.subarray(headEnd + HEAD_END.length);
  let body: Buffer | undefined;
  if (headers['transfer-encoding']?.toLowerCase() === 'chunked') body = dechunk(rest);
  else if (headers['content-length'] !== undefined) {
    const len = Number(headers['content-length']);
    if (!Number.isInteger(len) || len < 0) throw new HttpProtocolError(`bad content-length ${headers['content-length']}`);
    body = rest.length >= len ? rest.subarray(0, len) : undefined;
  } else if (ended) body = rest;
  if (!body) {
    if (ended) throw new HttpProtocolError('connection closed in the middle of the answer');
    return undefined;
  }
  return { status: Number(m[1]), headers, body: body.toString('utf8') };
}

/** POSTs `body` (JSON) to `path` on the unix socket; rejects with HttpConnectionError('ETIMEDOUT') after `timeoutMs`. */
export async function postJson(socketPath: string, path: string, body: string, timeoutMs: number): Promise<HttpReply> {
  // Loaded here, not at the top: VERSION never needs it.
  const { connect } = await import('node:net');
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (f: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      f();
    };
    const check = (ended: boolean) => {
      try {
        const buf = Buffer.concat(chunks);
        if (ended && buf.length === 0) {
          finish(() => reject(new HttpConnectionError('ECONNRESET', 'the server closed the connection without answering')));
          return;
        }
        const reply = parseReply(buf, ended);
        if (reply) finish(() => resolve(reply));
      } catch (e) {
        finish(() => reject(e));
      }
    };
    const timer = setTimeout(() => finish(() => reject(new HttpConnectionError('ETIMEDOUT', `no answer within ${timeoutMs} ms`))), timeoutMs);
    sock.on('connect', () => {
      const payload = Buffer.from(body);
      const head = `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${payload.length}\r\nConnection: close\r\n\r\n`;
      sock.write(Buffer.concat([Buffer.from(head, 'latin1'), payload]));
    });
    sock.on('data', (c: Buffer) => {
      chunks.push(c);
      check(false);
    });
    sock.on('end', () => check(true));
    sock.on('close', () => check(true));
    sock.on('error', (e: NodeJS.ErrnoException) => finish(() => reject(new HttpConnectionError(e.code ?? 'EIO', e.message))));
  });
}
