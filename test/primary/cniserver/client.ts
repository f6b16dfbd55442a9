import { request } from 'node:http';
import type { CniInvocation, CniReply } from '../../../src/cni/shim-protocol.js';

export interface HttpAnswer {
  status: number;
  body: string;
}

/** A raw HTTP exchange on a unix socket. */
export function httpOnSocket(socketPath: string, opts: { method?: string; path?: string; body?: string } = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: opts.path ?? '/v1/cni', method: opts.method ?? 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Posts an invocation as the shim does; expects HTTP 200. */
export async function invoke(socketPath: string, inv: CniInvocation): Promise<CniReply> {
  const a = await httpOnSocket(socketPath, { body: JSON.stringify(inv) });
  if (a.status !== 200) throw new Error(`HTTP ${a.status}: ${a.body}`);
  return JSON.parse(a.body) as CniReply;
}
