import type { Operation } from './operations.js';

/** Base of every error this client raises. */
export class OvsdbError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The peer sent something that is not OVSDB JSON-RPC; the connection is dropped. */
export class OvsdbProtocolError extends OvsdbError {}

/** No reply within the request's timeout. A transact that was sent may still have been committed. */
export class OvsdbRequestTimeoutError extends OvsdbError {
  constructor(
    readonly method: string,
    readonly timeoutMs: number,
    /** Whether the request had reached the wire (if not, it certainly had no effect). */
    readonly sent: boolean,
  ) {
    super(`ovsdb ${method} got no reply within ${timeoutMs} ms${sent ? '' : ' (never sent: not connected)'}`);
  }
}

/**
 * The connection dropped while a non-idempotent request was in flight. Whether the server applied it
 * is unknown; the caller may check and retry.
 */
export class OvsdbConnectionLostError extends OvsdbError {
  readonly retryable = true;
  constructor(
    readonly method: string,
    reason: string,
  ) {
    super(`ovsdb connection lost during ${method} (${reason}); outcome unknown, retry if appropriate`);
  }
}

/** The client was closed before the request completed. */
export class OvsdbClosedError extends OvsdbError {
  constructor(what = 'request') {
    super(`ovsdb client closed before the ${what} completed`);
  }
}

/** A JSON-RPC level error reply (unknown method, unknown database, malformed request...). */
export class OvsdbRpcError extends OvsdbError {
  constructor(
    readonly method: string,
    readonly error: string,
    readonly details?: string,
    readonly syntax?: string,
  ) {
    super(`ovsdb ${method} failed: ${error}${details ? `: ${details}` : ''}`);
  }
}

/**
 * One operation of a transaction failed, or (opIndex undefined, commitFailed) every operation succeeded
 * but the commit did not, e.g. a duplicate index value or a dangling reference.
 */
export class OvsdbTransactError extends OvsdbError {
  constructor(
    /** Index of the failing operation, undefined when the commit itself failed. */
    readonly opIndex: number | undefined,
    /** The failing operation, when opIndex is set. */
    readonly op: Operation | undefined,
    /** The OVSDB error string, e.g. "constraint violation". */
    readonly error: string,
    readonly details: string | undefined,
  ) {
    const where = opIndex === undefined ? 'commit' : `operation ${opIndex} (${op?.op ?? '?'}${op && 'table' in op ? ` ${op.table}` : ''})`;
    super(`ovsdb transaction failed at ${where}: ${error}${details ? `: ${details}` : ''}`);
  }

  get commitFailed(): boolean {
    return this.opIndex === undefined;
  }
}

/** Duplicate value of an indexed column, value outside its allowed set/range, too many rows... */
export class OvsdbConstraintViolationError extends OvsdbTransactError {}

/** A strong reference to a row that does not exist (or a delete of a row still referenced). */
export class OvsdbReferentialIntegrityError extends OvsdbTransactError {}

/** A `wait` operation's condition did not hold within its timeout. */
export class OvsdbWaitTimeoutError extends OvsdbTransactError {}

/** Picks the typed subclass for an OVSDB operation error string. */
export function transactError(opIndex: number | undefined, op: Operation | undefined, error: string, details: string | undefined): OvsdbTransactError {
  switch (error) {
    case 'constraint violation':
      return new OvsdbConstraintViolationError(opIndex, op, error, details);
    case 'referential integrity violation':
      return new OvsdbReferentialIntegrityError(opIndex, op, error, details);
    case 'timed out':
      return new OvsdbWaitTimeoutError(opIndex, op, error, details);
    default:
      return new OvsdbTransactError(opIndex, op, error, details);
  }
}

/** A cache waiter's condition did not become true in time. */
export class CacheWaitTimeoutError extends OvsdbError {
  constructor(
    readonly description: string,
    readonly timeoutMs: number,
  ) {
    super(`timed out after ${timeoutMs} ms waiting for ${description}`);
  }
}

/** A port/interface request that is invalid; nothing was sent to the database. */
export class InvalidPortSpecError extends OvsdbError {}

/** The interface type is not one Seine knows (or not one this ovs-vswitchd supports). Nothing was sent. */
export class InvalidInterfaceTypeError extends InvalidPortSpecError {
  constructor(
    readonly interfaceType: string,
    readonly supported: readonly string[],
  ) {
    super(`unsupported interface type "${interfaceType}" (supported: ${supported.join(', ')})`);
  }
}

export class BridgeNotFoundError extends OvsdbError {
  constructor(readonly bridge: string) {
    super(`bridge ${bridge} does not exist`);
  }
}

export class RowNotFoundError extends OvsdbError {
  constructor(
    readonly table: string,
    readonly key: string,
  ) {
    super(`${table} ${key} does not exist`);
  }
}

/**
 * ovs-vswitchd could not open the interface (it set ofport to -1); `interfaceError` is the text it
 * wrote to the Interface `error` column.
 */
export class InterfaceOpenError extends OvsdbError {
  constructor(
    readonly iface: string,
    readonly interfaceError: string,
  ) {
    super(`ovs-vswitchd could not open interface ${iface}: ${interfaceError}`);
  }
}
