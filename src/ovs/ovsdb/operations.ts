import type { WireRow, WireValue } from './values.js';

/*
 * Transaction operations (RFC 7047 section 5.2) and their results.
 */

export type ConditionFunction = '<' | '<=' | '==' | '!=' | '>=' | '>' | 'includes' | 'excludes';
export type Condition = readonly [column: string, fn: ConditionFunction, value: WireValue];
export type Mutator = '+=' | '-=' | '*=' | '/=' | '%=' | 'insert' | 'delete';
export type Mutation = readonly [column: string, mutator: Mutator, value: WireValue];

export interface InsertOp {
  op: 'insert';
  table: string;
  row: WireRow;
  /** Name other operations of the same transaction use to refer to the new row (namedUuid()). */
  'uuid-name'?: string;
}
export interface SelectOp {
  op: 'select';
  table: string;
  where: readonly Condition[];
  columns?: readonly string[];
}
export interface UpdateOp {
  op: 'update';
  table: string;
  where: readonly Condition[];
  row: WireRow;
}
export interface MutateOp {
  op: 'mutate';
  table: string;
  where: readonly Condition[];
  mutations: readonly Mutation[];
}
export interface DeleteOp {
  op: 'delete';
  table: string;
  where: readonly Condition[];
}
export interface WaitOp {
  op: 'wait';
  table: string;
  where: readonly Condition[];
  columns: readonly string[];
  until: '==' | '!=';
  rows: readonly WireRow[];
  /** Milliseconds the server waits for the condition; 0 or absent checks once (absent: forever per RFC, so always set it). */
  timeout?: number;
}
export interface CommitOp {
  op: 'commit';
  durable: boolean;
}
export interface AbortOp {
  op: 'abort';
}
export interface CommentOp {
  op: 'comment';
  comment: string;
}
export interface AssertOp {
  op: 'assert';
  lock: string;
}

export type Operation = InsertOp | SelectOp | UpdateOp | MutateOp | DeleteOp | WaitOp | CommitOp | AbortOp | CommentOp | AssertOp;

export interface InsertResult {
  /** UUID of the new row. */
  uuid: string;
}
export interface SelectResult {
  rows: WireRow[];
}
export interface CountResult {
  count: number;
}
export type EmptyResult = Record<string, never>;

export type ResultOf<O> = O extends InsertOp
  ? InsertResult
  : O extends SelectOp
    ? SelectResult
    : O extends UpdateOp | MutateOp | DeleteOp
      ? CountResult
      : EmptyResult;

/** Per-operation results of a transaction, typed by position. */
export type ResultsOf<T extends readonly Operation[]> = { -readonly [K in keyof T]: ResultOf<T[K]> };

/** Operations that change nothing, so a transaction made only of them may be re-sent after a reconnect. */
const READ_ONLY_OPS: ReadonlySet<Operation['op']> = new Set(['select', 'wait', 'comment']);

export function isReadOnly(ops: readonly Operation[]): boolean {
  return ops.every((o) => READ_ONLY_OPS.has(o.op));
}

/** Operation builders. */
export const op = {
  insert(table: string, row: WireRow, uuidName?: string): InsertOp {
    return uuidName === undefined ? { op: 'insert', table, row } : { op: 'insert', table, row, 'uuid-name': uuidName };
  },
  select(table: string, where: readonly Condition[], columns?: readonly string[]): SelectOp {
    return columns === undefined ? { op: 'select', table, where } : { op: 'select', table, where, columns };
  },
  update(table: string, where: readonly Condition[], row: WireRow): UpdateOp {
    return { op: 'update', table, where, row };
  },
  mutate(table: string, where: readonly Condition[], mutations: readonly Mutation[]): MutateOp {
    return { op: 'mutate', table, where, mutations };
  },
  delete(table: string, where: readonly Condition[]): DeleteOp {
    return { op: 'delete', table, where };
  },
  /** Fails the transaction unless `where` selects exactly (`==`) / not exactly (`!=`) `rows` within `timeoutMs`. */
  wait(table: string, where: readonly Condition[], columns: readonly string[], until: '==' | '!=', rows: readonly WireRow[], timeoutMs = 0): WaitOp {
    return { op: 'wait', table, where, columns, until, rows, timeout: timeoutMs };
  },
  commit(durable: boolean): CommitOp {
    return { op: 'commit', durable };
  },
  abort(): AbortOp {
    return { op: 'abort' };
  },
  comment(comment: string): CommentOp {
    return { op: 'comment', comment };
  },
  assert(lock: string): AssertOp {
    return { op: 'assert', lock };
  },
} as const;
