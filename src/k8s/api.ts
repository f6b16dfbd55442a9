import { ApiException, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { STATUS_CODES } from 'node:http';

/** Request options that make client-node send a JSON merge patch (its default is JSON patch). */
export const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** The HTTP status of a failed client-node call, or undefined for non-API errors. */
export function apiStatus(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

export function isNotFound(err: unknown): boolean {
  return apiStatus(err) === 404;
}

export function isConflict(err: unknown): boolean {
  return apiStatus(err) === 409;
}

/** The server's message for a failed call (the Status body's `message`), else the error text. */
export function apiMessage(err: unknown): string {
  if (err instanceof ApiException) {
    try {
      const body = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
      if (body?.message) return String(body.message);
    } catch {
      /* not JSON */
    }
  }
  return err instanceof Error ? err.message : String(err);
}

/** apiMessage in one line: a refusal without a Status body (client-node drops some) is named by its HTTP status. */
export function apiFailure(err: unknown): string {
  const code = apiStatus(err);
  const message = apiMessage(err);
  if (code !== undefined && err instanceof Error && message === err.message) return STATUS_CODES[code] ?? `HTTP ${code}`;
  return message.split('\n')[0]!;
}
