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

/** The Status body of a failed call, when it came with one. */
function statusBody(err: unknown): { message?: unknown; reason?: unknown } | undefined {
  if (!(err instanceof ApiException)) return undefined;
  try {
    return (typeof err.body === 'string' ? JSON.parse(err.body) : err.body) as { message?: unknown; reason?: unknown } | undefined;
  } catch {
    return undefined; // not JSON
  }
}

/** The server's message for a failed call (the Status body's `message`), else the error text. */
export function apiMessage(err: unknown): string {
  const message = statusBody(err)?.message;
  if (message) return String(message);
  return err instanceof Error ? err.message : String(err);
}

/** The reason of a Status the server refused with (NotFound, Invalid, Forbidden...). */
export function apiReason(err: unknown): string | undefined {
  const reason = statusBody(err)?.reason;
  return typeof reason === 'string' && reason ? reason : undefined;
}

/** What `read` resolves to, or undefined when the object does not exist. */
export async function unlessNotFound<T>(read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/** apiMessage in one line: a refusal without a Status body (client-node drops some) is named by its HTTP status. */
export function apiFailure(err: unknown): string {
  const code = apiStatus(err);
  const message = apiMessage(err);
  if (code !== undefined && err instanceof Error && message === err.message) return STATUS_CODES[code] ?? `HTTP ${code}`;
  return message.split('\n')[0]!;
}
