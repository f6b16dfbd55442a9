// Checks and descriptions of untrusted values. Dependency-free: the shim imports it on every pod event.

/**
 * A value in a few characters, for error details: strings and numbers shown (cut at 60 characters),
 * objects and arrays only named, so a huge or deeply nested value never makes a huge message (or a
 * recursion) of its own.
 */
export function brief(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'object') return 'object';
  if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return typeof value;
  const s = typeof value === 'bigint' ? String(value) : JSON.stringify(value);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Whether `s` holds a C0 control character or DEL: never part of a name, path or argument Seine uses. */
export function hasControlCharacters(s: string): boolean {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f]/.test(s);
}
