// TokenAuthenticator against the lab API server (in-process, real HTTP): answers come from real TokenReviews, and
// the cache keeps a crowd of requests with one token, or a token asked again within its TTL, to one review.
import { KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { LAB_ADMIN_USER } from '../../src/lab/apiserver/tokenreview.js';
import { TokenAuthenticator } from '../../src/k8s/token-review.js';
import { startServer, type TestServer } from '../lab/apiserver/helpers.js';

describe('TokenAuthenticator', () => {
  let srv: TestServer;
  let kc: KubeConfig;
  /** TokenReviews the API server answered, from its request log. */
  let served = 0;
  beforeAll(async () => {
    const log = pino({ level: 'debug' }, {
      write: (line: string) => {
        const l = JSON.parse(line) as { msg?: string; path?: string; method?: string };
        if (l.msg === 'request' && l.method === 'POST' && l.path === '/apis/authentication.k8s.io/v1/tokenreviews') served++;
      },
    });
    srv = await startServer({ log });
    kc = new KubeConfig();
    kc.loadFromFile(srv.kubeconfig);
  });
  afterAll(() => srv?.stop());

  /** Waits for the server's count to settle at `n` (its request log is written once a response has finished). */
  const reviewsServed = async (n: number): Promise<number> => {
    for (let i = 0; i < 50 && served < n; i++) await new Promise((r) => setTimeout(r, 20));
    return served;
  };

  it('reviews a token once for many concurrent requests and reuses the answer until its TTL', async () => {
    let now = 1_000_000;
    const a = new TokenAuthenticator({ kubeConfig: kc, ttlMs: 60_000, negativeTtlMs: 5_000, now: () => now });
    const start = served;
    const users = await Promise.all(Array.from({ length: 50 }, () => a.authenticate(srv.api.token)));
    expect(new Set(users)).toEqual(new Set([LAB_ADMIN_USER]));
    expect(await reviewsServed(start + 1)).toBe(start + 1);
    expect((await a.review(srv.api.token))?.groups).toContain('system:masters');
    now += 59_000;
    expect(await a.authenticate(srv.api.token)).toBe(LAB_ADMIN_USER);
    expect(await reviewsServed(start + 1)).toBe(start + 1);
    // Past the TTL the token is reviewed again.
    now += 2_000;
    expect(await a.authenticate(srv.api.token)).toBe(LAB_ADMIN_USER);
    expect(await reviewsServed(start + 2)).toBe(start + 2);
    expect(a.reviews).toBe(2);
  });

  it('caches a refusal briefly, and does not cache an API server that cannot answer', async () => {
    let now = 1_000_000;
    const a = new TokenAuthenticator({ kubeConfig: kc, ttlMs: 60_000, negativeTtlMs: 5_000, now: () => now });
    const start = served;
    expect(await a.authenticate('forged')).toBeUndefined();
    expect(await a.authenticate('forged')).toBeUndefined();
    expect(await reviewsServed(start + 1)).toBe(start + 1);
    now += 6_000;
    expect(await a.authenticate('forged')).toBeUndefined();
    expect(await reviewsServed(start + 2)).toBe(start + 2);
    expect(await a.authenticate('')).toBeUndefined();
    expect(a.reviews).toBe(2);

    // A kubeconfig whose own token the API server refuses: the review fails, and is asked again next time.
    const wrong = new KubeConfig();
    wrong.loadFromString(srv.api.kubeconfig().replace(srv.api.token, 'stale'));
    const b = new TokenAuthenticator({ kubeConfig: wrong });
    await expect(b.authenticate(srv.api.token)).rejects.toThrow();
    await expect(b.authenticate(srv.api.token)).rejects.toThrow();
    expect(b.reviews).toBe(2);
  });
});
