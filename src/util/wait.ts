export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Records what a polled check saw, so that a timed-out wait can say it. */
export type Saw = (observation: unknown) => void;

function describe(v: unknown): string {
  if (v instanceof Error) return v.message;
  if (typeof v === 'string') return v;
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

/**
 * Polls until `check` returns a value (not undefined), or fails after `timeoutMs` naming `what`, the last
 * thing the check reported through `saw` and the last error it threw.
 */
export async function eventually<T>(what: string, check: (saw: Saw) => Promise<T | undefined>, timeoutMs = 30_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  let seen: { v: unknown } | undefined;
  const saw: Saw = (v) => (seen = { v });
  for (;;) {
    try {
      const v = await check(saw);
      if (v !== undefined) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      const parts = [seen ? `last saw ${describe(seen.v).slice(0, 2000)}` : '', lastError ? `last error ${describe(lastError)}` : ''].filter(Boolean);
      throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${parts.length ? `: ${parts.join('; ')}` : ''}`);
    }
    await sleep(everyMs);
  }
}
