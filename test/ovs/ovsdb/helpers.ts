import { createServer } from 'node:net';
import type { OvsdbClient } from '../../../src/ovs/ovsdb/client.js';

/** Resolves with what a promise rejects with (fails the test if it resolves). */
export async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected the promise to reject');
}

/** `ovs-vsctl get` output without quotes/newline. */
export function unquote(s: string): string {
  return s.trim().replace(/^"(.*)"$/, '$1');
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolves when the client emits `event` (bounded by the test timeout). */
export function nextEvent(client: OvsdbClient, event: 'connected' | 'disconnected'): Promise<number> {
  return new Promise((resolve) => client.once(event, () => resolve(Date.now())));
}
