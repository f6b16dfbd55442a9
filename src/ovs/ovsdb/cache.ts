import { logger, type Logger } from '../../util/log.js';
import type { MonitorSink, TableUpdates } from './client.js';
import { CacheWaitTimeoutError, OvsdbProtocolError } from './errors.js';
import { applyDiff, decodeRow, decodeValue, rowsEqual, type DbRow, type DbSchema, type DbValue, type TableSchema } from './schema.js';
import type { JsAtom } from './values.js';

export type ChangeKind = 'insert' | 'modify' | 'delete';

export interface RowChange {
  table: string;
  uuid: string;
  kind: ChangeKind;
  /** The row before the change (modify, delete). */
  old?: DbRow;
  /** The row after the change (insert, modify). */
  row?: DbRow;
}

/** Called once per applied batch (one notification or one resync), after the whole batch is in place. */
export type ChangeListener = (changes: readonly RowChange[]) => void;

export interface CacheWaitOptions {
  /** Default 30 s. */
  timeoutMs?: number;
  /** Used in the timeout error. */
  description?: string;
  /** Only re-check after changes to these tables (every table when absent). */
  tables?: readonly string[];
}

export interface CachedRow {
  uuid: string;
  row: DbRow;
}

interface Waiter {
  tables?: ReadonlySet<string>;
  /** Returns true once it has settled its promise. */
  attempt(): boolean;
  fail(err: Error): void;
}

const DEFAULT_WAIT_MS = 30_000;

/** Unique single-column indexes of a table whose column is a scalar, so value -> uuid is well defined. */
function scalarIndexColumns(ts: TableSchema, monitored: readonly string[]): string[] {
  return ts.indexes
    .filter((ix) => ix.length === 1 && monitored.includes(ix[0]!) && ts.columns.get(ix[0]!)?.kind === 'scalar')
    .map((ix) => ix[0]!);
}

/**
 * In-memory replica of monitored tables, fed by an OvsdbClient monitor. Rows are immutable snapshots
 * (a change replaces the row object), so listeners may keep the rows they are given. Waiters live in the
 * cache, not in a connection, so they survive reconnects and resolve from the resynced data.
 */
export class OvsdbCache implements MonitorSink {
  private data = new Map<string, Map<string, DbRow>>();
  /** table -> column -> value -> uuid */
  private indexes = new Map<string, Map<string, Map<JsAtom, string>>>();
  private schema?: DbSchema;
  private columns: ReadonlyMap<string, readonly string[]> = new Map();
  private readonly listeners = new Set<ChangeListener>();
  private readonly waiters = new Set<Waiter>();
  private endedWith?: Error;
  private resets = 0;
  private readonly log: Logger;

  constructor(log?: Logger) {
    this.log = log ?? logger('ovsdb');
  }

  /** Number of snapshots received: 1 after the first sync, +1 per resync after a reconnect. */
  get syncCount(): number {
    return this.resets;
  }

  get dbSchema(): DbSchema | undefined {
    return this.schema;
  }

  /** Set once the monitor is gone for good; waiters then fail with it. */
  get endReason(): Error | undefined {
    return this.endedWith;
  }

  rows(table: string): ReadonlyMap<string, DbRow> {
    return this.data.get(table) ?? new Map();
  }

  get(table: string, uuid: string): DbRow | undefined {
    return this.data.get(table)?.get(uuid);
  }

  /** The row whose `column` equals `value`; O(1) for a unique scalar index, a scan otherwise. */
  lookup(table: string, column: string, value: JsAtom): CachedRow | undefined {
    const index = this.indexes.get(table)?.get(column);
    if (index) {
      const uuid = index.get(value);
      const row = uuid === undefined ? undefined : this.get(table, uuid);
      return row && uuid ? { uuid, row } : undefined;
    }
    return this.find(table, (row) => row[column] === value);
  }

  find(table: string, predicate: (row: DbRow, uuid: string) => boolean): CachedRow | undefined {
    for (const [uuid, row] of this.rows(table)) if (predicate(row, uuid)) return { uuid, row };
    return undefined;
  }

  filter(table: string, predicate: (row: DbRow, uuid: string) => boolean): CachedRow[] {
    const out: CachedRow[] = [];
    for (const [uuid, row] of this.rows(table)) if (predicate(row, uuid)) out.push({ uuid, row });
    return out;
  }

  /** Subscribes to change batches; returns the unsubscribe function. */
  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves with the first row of `table` satisfying `predicate`, now or after a later change. */
  waitFor(table: string, predicate: (row: DbRow, uuid: string) => boolean, options: CacheWaitOptions = {}): Promise<CachedRow> {
    return this.waitUntil(() => this.find(table, predicate), { description: `a matching ${table} row`, tables: [table], ...options });
  }

  /**
   * Resolves with the first non-undefined result of `check`, evaluated now and after every applied
   * batch (also across reconnects), or rejects with CacheWaitTimeoutError.
   */
  waitUntil<T>(check: () => T | undefined, options: CacheWaitOptions = {}): Promise<T> {
    if (this.endedWith) return Promise.reject(this.endedWith);
    const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_MS;
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = {
        tables: options.tables ? new Set(options.tables) : undefined,
        attempt: () => {
          let value: T | undefined;
          try {
            value = check();
          } catch (e) {
            waiter.fail(e as Error);
            return true;
          }
          if (value === undefined) return false;
          this.waiters.delete(waiter);
          clearTimeout(timer);
          resolve(value);
          return true;
        },
        fail: (err) => {
          this.waiters.delete(waiter);
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => waiter.fail(new CacheWaitTimeoutError(options.description ?? 'a cache condition', timeoutMs)), timeoutMs);
      if (!waiter.attempt()) this.waiters.add(waiter);
    });
  }

  reset(schema: DbSchema, columns: ReadonlyMap<string, readonly string[]>, snapshot: TableUpdates): void {
    this.schema = schema;
    this.columns = columns;
    const changes: RowChange[] = [];
    const data = new Map<string, Map<string, DbRow>>();
    for (const [table, cols] of columns) {
      const ts = this.tableSchema(table);
      const fresh = new Map<string, DbRow>();
      for (const u of snapshot.get(table) ?? []) {
        if (u.kind === 'insert') fresh.set(u.uuid, decodeRow(ts, u.row, cols));
      }
      const previous = this.data.get(table) ?? new Map<string, DbRow>();
      for (const [uuid, old] of previous) if (!fresh.has(uuid)) changes.push({ table, uuid, kind: 'delete', old });
      for (const [uuid, row] of fresh) {
        const old = previous.get(uuid);
        if (!old) changes.push({ table, uuid, kind: 'insert', row });
        else if (rowsEqual(old, row)) fresh.set(uuid, old);
        else changes.push({ table, uuid, kind: 'modify', old, row });
      }
      data.set(table, fresh);
    }
    this.data = data;
    this.rebuildIndexes();
    this.resets++;
    this.publish(changes, undefined);
  }

  update(updates: TableUpdates): void {
    const changes: RowChange[] = [];
    const touched = new Set<string>();
    for (const [table, list] of updates) {
      const rows = this.data.get(table);
      const cols = this.columns.get(table);
      if (!rows || !cols) continue;
      const ts = this.tableSchema(table);
      touched.add(table);
      for (const u of list) {
        const old = rows.get(u.uuid);
        if (u.kind === 'delete') {
          if (!old) continue;
          rows.delete(u.uuid);
          this.unindex(table, u.uuid, old);
          changes.push({ table, uuid: u.uuid, kind: 'delete', old });
          continue;
        }
        let row: DbRow;
        if (u.kind === 'insert') {
          row = decodeRow(ts, u.row, cols);
        } else {
          if (!old) throw new OvsdbProtocolError(`modify of unknown ${table} row ${u.uuid}`);
          const next: Record<string, DbValue> = { ...old };
          for (const [name, wire] of Object.entries(u.row)) {
            const col = ts.columns.get(name);
            if (!col || !cols.includes(name)) continue;
            next[name] = u.diff ? applyDiff(col, old[name]!, wire) : decodeValue(col, wire);
          }
          row = next;
        }
        if (old) this.unindex(table, u.uuid, old);
        rows.set(u.uuid, row);
        this.index(table, u.uuid, row);
        changes.push(old ? { table, uuid: u.uuid, kind: 'modify', old, row } : { table, uuid: u.uuid, kind: 'insert', row });
      }
    }
    this.publish(changes, touched);
  }

  ended(reason: Error): void {
    if (this.endedWith) return;
    this.endedWith = reason;
    for (const w of [...this.waiters]) w.fail(reason);
  }

  private tableSchema(table: string): TableSchema {
    const ts = this.schema?.tables.get(table);
    if (!ts) throw new OvsdbProtocolError(`no schema for table ${table}`);
    return ts;
  }

  private rebuildIndexes(): void {
    this.indexes.clear();
    for (const [table, cols] of this.columns) {
      const byColumn = new Map<string, Map<JsAtom, string>>();
      for (const column of scalarIndexColumns(this.tableSchema(table), cols)) byColumn.set(column, new Map());
      this.indexes.set(table, byColumn);
      for (const [uuid, row] of this.rows(table)) this.index(table, uuid, row);
    }
  }

  private index(table: string, uuid: string, row: DbRow): void {
    for (const [column, ix] of this.indexes.get(table) ?? []) ix.set(row[column] as JsAtom, uuid);
  }

  private unindex(table: string, uuid: string, row: DbRow): void {
    // Within one batch a new row may already own the value (insert listed before the old row's delete).
    for (const [column, ix] of this.indexes.get(table) ?? []) if (ix.get(row[column] as JsAtom) === uuid) ix.delete(row[column] as JsAtom);
  }

  private publish(changes: readonly RowChange[], touched: ReadonlySet<string> | undefined): void {
    if (changes.length) {
      for (const listener of [...this.listeners]) {
        try {
          listener(changes);
        } catch (e) {
          this.log.error({ err: (e as Error).message }, 'ovsdb cache change listener threw');
        }
      }
    }
    for (const w of [...this.waiters]) {
      if (touched && w.tables && ![...w.tables].some((t) => touched.has(t))) continue;
      w.attempt();
    }
  }
}
