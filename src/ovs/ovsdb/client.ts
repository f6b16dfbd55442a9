import { EventEmitter } from 'node:events';
import { logger, type Logger } from '../../util/log.js';
import {
  OvsdbClosedError,
  OvsdbConnectionLostError,
  OvsdbError,
  OvsdbProtocolError,
  OvsdbRequestTimeoutError,
  OvsdbRpcError,
  transactError,
} from './errors.js';
import { isReadOnly, type Operation, type ResultsOf } from './operations.js';
import { parseSchema, type DbSchema } from './schema.js';
import { formatRemote, parseRemote, Transport, type Remote } from './transport.js';
import { uuidValue, type WireRow } from './values.js';

export interface BackoffOptions {
  /** Delay before the first reconnect attempt. */
  initialMs?: number;
  /** Upper bound of the doubling delay. */
  maxMs?: number;
  /** Fraction of each delay randomly shaved off, so many agents do not reconnect in lockstep. */
  jitter?: number;
}

export interface OvsdbClientOptions {
  /** `unix:PATH` or `tcp:HOST:PORT`. */
  remote: string;
  /** Default per-request timeout, counted from the call (time spent queued while disconnected included). 0 disables. */
  requestTimeoutMs?: number;
  connectTimeoutMs?: number;
  backoff?: BackoffOptions;
  /** Send an echo after this much silence and drop the connection if it goes unanswered as long. 0 disables. */
  probeIntervalMs?: number;
  /** `auto` uses monitor_cond (update2 diffs) and falls back to monitor when the server lacks it. */
  monitorMethod?: 'auto' | 'monitor_cond' | 'monitor';
  log?: Logger;
}

export interface RequestOptions {
  /** Overrides the client's default; 0 waits forever. */
  timeoutMs?: number;
  /** The request may be sent again if the connection drops before its reply (true for reads). */
  retryable?: boolean;
}

export type ClientState = 'idle' | 'connecting' | 'syncing' | 'connected' | 'backoff' | 'closed';

export interface ClientEvents {
  /** Connected and every monitor resynced; queued requests are being sent. */
  connected: [];
  disconnected: [reason: string];
  closed: [];
}

export interface ClientStats {
  connects: number;
  disconnects: number;
  echoRequestsAnswered: number;
  /** Requests written to the wire (re-sends included). */
  requestsSent: number;
}

/** One row change of a monitor, independent of the update/update2 wire format. */
export type RowUpdate =
  | { uuid: string; kind: 'insert'; row: WireRow }
  | { uuid: string; kind: 'delete' }
  /** `diff`: columns hold update2 differences; otherwise they hold new values. */
  | { uuid: string; kind: 'modify'; row: WireRow; diff: boolean };

export type TableUpdates = Map<string, RowUpdate[]>;

/** Receives a monitor's data; the cache implements this. */
export interface MonitorSink {
  /** A complete snapshot: on the first sync and after every reconnect. `columns` are the monitored ones per table. */
  reset(schema: DbSchema, columns: ReadonlyMap<string, readonly string[]>, snapshot: TableUpdates): void;
  update(updates: TableUpdates): void;
  /** The monitor is gone for good (client closed, cancelled, or the server refused it). */
  ended(reason: Error): void;
}

export interface MonitorTableRequest {
  /** Columns to replicate; all when absent. */
  columns?: readonly string[];
}

export interface MonitorHandle {
  readonly id: string;
  /** The method in use on the current connection (undefined while not synced). */
  readonly method: 'monitor_cond' | 'monitor' | undefined;
  /** Resolves once the first snapshot reached the sink. */
  readonly ready: Promise<void>;
  cancel(): Promise<void>;
}

interface Session {
  transport?: Transport;
  lastReceived: number;
  monitorMethod?: 'monitor_cond' | 'monitor';
  probeTimer?: NodeJS.Timeout;
  probing: boolean;
}

interface PendingRequest {
  id: number;
  method: string;
  params: unknown[];
  retryable: boolean;
  /** Set while on the wire; requests of a session that closed are requeued or rejected. */
  session?: Session;
  /** Session setup traffic, bound to one session and never queued. */
  internal: boolean;
  sent: boolean;
  timer?: NodeJS.Timeout;
  resolve(result: unknown): void;
  reject(err: Error): void;
}

interface MonitorRegistration {
  id: string;
  db: string;
  tables: Readonly<Record<string, MonitorTableRequest>>;
  sink: MonitorSink;
  session?: Session;
  method?: 'monitor_cond' | 'monitor';
  readySettled: boolean;
  resolveReady(): void;
  rejectReady(err: Error): void;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function rpcError(method: string, error: unknown): OvsdbRpcError {
  if (isObject(error)) {
    const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
    return new OvsdbRpcError(method, str(error.error) ?? JSON.stringify(error), str(error.details), str(error.syntax));
  }
  return new OvsdbRpcError(method, typeof error === 'string' ? error : JSON.stringify(error));
}

function parseTableUpdates(json: unknown, version: 1 | 2): TableUpdates {
  if (!isObject(json)) throw new OvsdbProtocolError('table updates are not an object');
  const out: TableUpdates = new Map();
  for (const [table, rows] of Object.entries(json)) {
    if (!isObject(rows)) throw new OvsdbProtocolError(`updates of ${table} are not an object`);
    const list: RowUpdate[] = [];
    for (const [uuid, u] of Object.entries(rows)) {
      if (!isObject(u)) throw new OvsdbProtocolError(`row update ${uuid} is not an object`);
      if (version === 1) {
        const hasNew = isObject(u.new);
        const hasOld = isObject(u.old);
        if (hasNew && hasOld) list.push({ uuid, kind: 'modify', row: u.new as WireRow, diff: false });
        else if (hasNew) list.push({ uuid, kind: 'insert', row: u.new as WireRow });
        else if (hasOld) list.push({ uuid, kind: 'delete' });
      } else if (isObject(u.initial)) list.push({ uuid, kind: 'insert', row: u.initial as WireRow });
      else if (isObject(u.insert)) list.push({ uuid, kind: 'insert', row: u.insert as WireRow });
      else if (isObject(u.modify)) list.push({ uuid, kind: 'modify', row: u.modify as WireRow, diff: true });
      else if ('delete' in u) list.push({ uuid, kind: 'delete' });
      else throw new OvsdbProtocolError(`row update ${uuid} has no known member`);
    }
    out.set(table, list);
  }
  return out;
}

const DEFAULTS = {
  requestTimeoutMs: 30_000,
  connectTimeoutMs: 5_000,
  backoffInitialMs: 250,
  backoffMaxMs: 8_000,
  jitter: 0.25,
  probeIntervalMs: 5_000,
};

/**
 * OVSDB (RFC 7047) JSON-RPC client over a unix or TCP stream. It reconnects by itself with exponential
 * backoff and re-establishes every monitor on each new connection. Requests made while disconnected
 * wait in a queue; on a connection loss, in-flight reads are re-sent while in-flight writes fail with
 * OvsdbConnectionLostError (they may or may not have been committed).
 */
export class OvsdbClient extends EventEmitter<ClientEvents> {
  readonly remote: Remote;
  readonly stats: ClientStats = { connects: 0, disconnects: 0, echoRequestsAnswered: 0, requestsSent: 0 };
  private readonly opts: Required<Omit<OvsdbClientOptions, 'backoff' | 'log'>> & { backoff: Required<BackoffOptions> };
  private readonly log: Logger;
  private currentState: ClientState = 'idle';
  private session?: Session;
  private nextRequestId = 1;
  private nextMonitorId = 1;
  private queue: PendingRequest[] = [];
  private readonly inflight = new Map<number, PendingRequest>();
  private readonly monitors = new Map<string, MonitorRegistration>();
  private reconnectTimer?: NodeJS.Timeout;
  private connectAbort?: AbortController;
  private failedAttempts = 0;

  constructor(options: OvsdbClientOptions) {
    super();
    this.remote = parseRemote(options.remote);
    this.opts = {
      remote: options.remote,
      requestTimeoutMs: options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      probeIntervalMs: options.probeIntervalMs ?? DEFAULTS.probeIntervalMs,
      monitorMethod: options.monitorMethod ?? 'auto',
      backoff: {
        initialMs: options.backoff?.initialMs ?? DEFAULTS.backoffInitialMs,
        maxMs: options.backoff?.maxMs ?? DEFAULTS.backoffMaxMs,
        jitter: options.backoff?.jitter ?? DEFAULTS.jitter,
      },
    };
    this.log = options.log ?? logger('ovsdb', { remote: formatRemote(this.remote) });
  }

  /** Creates a client and waits until it is connected (closing it again if that fails). */
  static async connect(options: OvsdbClientOptions, timeoutMs = 30_000): Promise<OvsdbClient> {
    const client = new OvsdbClient(options);
    client.start();
    try {
      await client.whenConnected(timeoutMs);
    } catch (e) {
      await client.close();
      throw e;
    }
    return client;
  }

  get state(): ClientState {
    return this.currentState;
  }

  get connected(): boolean {
    return this.currentState === 'connected';
  }

  /** Starts connecting (and reconnecting whenever the connection drops) until close(). */
  start(): void {
    if (this.currentState !== 'idle') return;
    void this.connectOnce();
  }

  /** Resolves when connected with all monitors synced. */
  whenConnected(timeoutMs = this.opts.requestTimeoutMs): Promise<void> {
    if (this.currentState === 'connected') return Promise.resolve();
    if (this.currentState === 'closed') return Promise.reject(new OvsdbClosedError('connect'));
    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('connected', onConnected);
        this.off('closed', onClosed);
      };
      const onConnected = (): void => {
        cleanup();
        resolve();
      };
      const onClosed = (): void => {
        cleanup();
        reject(new OvsdbClosedError('connect'));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new OvsdbRequestTimeoutError('connect', timeoutMs, false));
      }, timeoutMs);
      this.on('connected', onConnected);
      this.on('closed', onClosed);
    });
  }

  /** Sends one JSON-RPC request; queued until connected. */
  request<T = unknown>(method: string, params: unknown[], options: RequestOptions = {}): Promise<T> {
    if (this.currentState === 'closed') return Promise.reject(new OvsdbClosedError(method));
    return new Promise<T>((resolve, reject) => {
      const req = this.makeRequest(method, params, options.retryable ?? false, false, options.timeoutMs ?? this.opts.requestTimeoutMs, resolve as (r: unknown) => void, reject);
      if (this.currentState === 'connected' && this.session) this.send(req, this.session);
      else this.queue.push(req);
    });
  }

  /**
   * Runs a transaction. Resolves with one typed result per operation; rejects with an
   * OvsdbTransactError subclass naming the failing operation (or the commit).
   */
  async transact<const T extends readonly Operation[]>(db: string, ops: T, options: RequestOptions = {}): Promise<ResultsOf<T>> {
    const result = await this.request<unknown>('transact', [db, ...ops], { retryable: isReadOnly(ops), ...options });
    if (!Array.isArray(result)) throw new OvsdbProtocolError('transact result is not an array');
    result.forEach((r: unknown, i) => {
      if (isObject(r) && typeof r.error === 'string') {
        // The element after the last operation reports a failed commit.
        const opIndex = i < ops.length ? i : undefined;
        throw transactError(opIndex, opIndex === undefined ? undefined : ops[opIndex], r.error, typeof r.details === 'string' ? r.details : undefined);
      }
    });
    if (result.length < ops.length) throw new OvsdbProtocolError(`transact returned ${result.length} results for ${ops.length} operations`);
    return ops.map((o, i) => {
      const r: unknown = result[i];
      if (!isObject(r)) throw new OvsdbProtocolError(`transact result ${i} is not an object`);
      return o.op === 'insert' ? { uuid: uuidValue(r.uuid) } : r;
    }) as ResultsOf<T>;
  }

  echo(...payload: unknown[]): Promise<unknown[]> {
    return this.request<unknown[]>('echo', payload, { retryable: true });
  }

  listDbs(): Promise<string[]> {
    return this.request<string[]>('list_dbs', [], { retryable: true });
  }

  async getSchema(db: string): Promise<DbSchema> {
    return parseSchema(await this.request('get_schema', [db], { retryable: true }));
  }

  /**
   * Replicates `tables` of `db` into `sink`: a snapshot now and after every reconnect, and every change
   * in between. Uses monitor_cond (update2 diffs) unless the server only knows monitor.
   */
  monitor(db: string, tables: Readonly<Record<string, MonitorTableRequest>>, sink: MonitorSink): MonitorHandle {
    if (this.currentState === 'closed') throw new OvsdbClosedError('monitor');
    let resolveReady!: () => void;
    let rejectReady!: (e: Error) => void;
    const ready = new Promise<void>((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    // The caller may never await ready; a rejection then must not surface as unhandled.
    ready.catch(() => undefined);
    const reg: MonitorRegistration = {
      id: `seine-${this.nextMonitorId++}`,
      db,
      tables,
      sink,
      readySettled: false,
      resolveReady: () => {
        reg.readySettled = true;
        resolveReady();
      },
      rejectReady: (e) => {
        reg.readySettled = true;
        rejectReady(e);
      },
    };
    this.monitors.set(reg.id, reg);
    if (this.currentState === 'connected' && this.session) {
      const session = this.session;
      this.establishMonitor(session, reg).catch((e: unknown) => this.monitorSetupFailed(session, reg, e));
    }
    return {
      id: reg.id,
      get method() {
        return reg.session ? reg.method : undefined;
      },
      ready,
      cancel: () => this.cancelMonitor(reg),
    };
  }

  /** Stops everything: rejects pending requests and waiters, closes the connection, clears all timers. */
  async close(): Promise<void> {
    if (this.currentState === 'closed') return;
    this.setState('closed');
    clearTimeout(this.reconnectTimer);
    this.connectAbort?.abort();
    const pending = [...this.queue, ...this.inflight.values()];
    this.queue = [];
    this.inflight.clear();
    for (const req of pending) this.settle(req, new OvsdbClosedError(req.method));
    for (const reg of this.monitors.values()) this.endMonitor(reg, new OvsdbClosedError('monitor'));
    this.monitors.clear();
    this.emit('closed');
    const session = this.session;
    this.session = undefined;
    if (session) {
      clearTimeout(session.probeTimer);
      await session.transport?.close('client closed');
    }
    this.log.debug('ovsdb client closed');
  }

  /** A method, not a property test, so TypeScript does not narrow it across awaits. */
  private isClosed(): boolean {
    return this.currentState === 'closed';
  }

  private setState(s: ClientState): void {
    this.currentState = s;
  }

  private makeRequest(
    method: string,
    params: unknown[],
    retryable: boolean,
    internal: boolean,
    timeoutMs: number,
    resolve: (r: unknown) => void,
    reject: (e: Error) => void,
  ): PendingRequest {
    const req: PendingRequest = { id: this.nextRequestId++, method, params, retryable, internal, sent: false, resolve, reject };
    if (timeoutMs > 0) {
      req.timer = setTimeout(() => {
        this.queue = this.queue.filter((q) => q !== req);
        this.inflight.delete(req.id);
        req.reject(new OvsdbRequestTimeoutError(method, timeoutMs, req.sent));
      }, timeoutMs);
    }
    return req;
  }

  /** Rejects (with `err`) or resolves a request and stops its timer. */
  private settle(req: PendingRequest, err: Error | undefined, result?: unknown): void {
    clearTimeout(req.timer);
    if (err) req.reject(err);
    else req.resolve(result);
  }

  private send(req: PendingRequest, session: Session): void {
    req.session = session;
    req.sent = true;
    this.inflight.set(req.id, req);
    this.stats.requestsSent++;
    session.transport!.send({ id: req.id, method: req.method, params: req.params });
  }

  /**
   * A request bound to one session (monitor setup, probes): never queued, never re-sent. `onReply` runs
   * synchronously when the reply is handled, before any later message of the same session.
   */
  private sessionRequest(
    session: Session,
    method: string,
    params: unknown[],
    timeoutMs = this.opts.requestTimeoutMs,
    onReply: (result: unknown) => void = () => undefined,
  ): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (!session.transport || session.transport.closed) {
        reject(new OvsdbConnectionLostError(method, 'connection already closed'));
        return;
      }
      const handle = (result: unknown): void => {
        try {
          onReply(result);
          resolve(result);
        } catch (e) {
          reject(e as Error);
        }
      };
      this.send(this.makeRequest(method, params, false, true, timeoutMs, handle, reject), session);
    });
  }

  private async connectOnce(): Promise<void> {
    if (this.currentState === 'closed') return;
    this.setState('connecting');
    const session: Session = { lastReceived: Date.now(), probing: false };
    const abort = new AbortController();
    this.connectAbort = abort;
    let transport: Transport;
    try {
      transport = await Transport.connect(
        this.remote,
        this.opts.connectTimeoutMs,
        {
          message: (msg) => this.onMessage(session, msg),
          closed: (reason) => this.onSessionClosed(session, reason),
        },
        abort.signal,
      );
    } catch (e) {
      if (this.isClosed()) return;
      this.scheduleReconnect(`connect failed: ${(e as Error).message}`);
      return;
    } finally {
      this.connectAbort = undefined;
    }
    if (this.isClosed()) {
      await transport.close('client closed');
      return;
    }
    session.transport = transport;
    this.session = session;
    this.stats.connects++;
    this.setState('syncing');
    this.startProbe(session);
    for (const reg of [...this.monitors.values()]) {
      try {
        await this.establishMonitor(session, reg);
      } catch (e) {
        this.monitorSetupFailed(session, reg, e);
      }
      if (this.session !== session) return;
    }
    // Monitors registered during the loop above are picked up by monitor() once connected.
    const late = [...this.monitors.values()].filter((r) => r.session !== session);
    if (this.session !== session || transport.closed) return;
    this.failedAttempts = 0;
    this.setState('connected');
    this.log.info({ connects: this.stats.connects, queued: this.queue.length }, this.stats.connects > 1 ? 'ovsdb reconnected' : 'ovsdb connected');
    for (const reg of late) this.establishMonitor(session, reg).catch((e: unknown) => this.monitorSetupFailed(session, reg, e));
    const queued = this.queue;
    this.queue = [];
    for (const req of queued) this.send(req, session);
    this.emit('connected');
  }

  private scheduleReconnect(reason: string): void {
    if (this.currentState === 'closed') return;
    const { initialMs, maxMs, jitter } = this.opts.backoff;
    const base = Math.min(maxMs, initialMs * 2 ** Math.min(this.failedAttempts, 30));
    const delay = Math.round(base * (1 - jitter * Math.random()));
    this.failedAttempts++;
    this.setState('backoff');
    const log = this.failedAttempts === 1 ? this.log.warn.bind(this.log) : this.log.debug.bind(this.log);
    log({ reason, delayMs: delay, attempt: this.failedAttempts }, 'ovsdb not connected; retrying');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.connectOnce();
    }, delay);
  }

  private onSessionClosed(session: Session, reason: string): void {
    clearTimeout(session.probeTimer);
    const wasCurrent = this.session === session;
    if (wasCurrent) this.session = undefined;
    const requeue: PendingRequest[] = [];
    for (const req of [...this.inflight.values()]) {
      if (req.session !== session) continue;
      this.inflight.delete(req.id);
      req.session = undefined;
      if (!req.internal && req.retryable && this.currentState !== 'closed') requeue.push(req);
      else this.settle(req, new OvsdbConnectionLostError(req.method, reason));
    }
    // Re-sent reads go first, in their original order.
    this.queue = [...requeue, ...this.queue];
    for (const reg of this.monitors.values()) if (reg.session === session) reg.session = undefined;
    if (this.currentState === 'closed' || !wasCurrent) return;
    this.stats.disconnects++;
    this.log.warn({ reason, requeued: requeue.length }, 'ovsdb connection lost');
    this.emit('disconnected', reason);
    this.scheduleReconnect(reason);
  }

  private onMessage(session: Session, msg: unknown): void {
    session.lastReceived = Date.now();
    if (!isObject(msg)) throw new OvsdbProtocolError('message is not a JSON object');
    if (typeof msg.method === 'string') {
      const params = Array.isArray(msg.params) ? msg.params : [];
      if (msg.id !== null && msg.id !== undefined) this.onServerRequest(session, msg.id, msg.method, params);
      else this.onNotification(session, msg.method, params);
      return;
    }
    if (typeof msg.id !== 'number') return;
    const req = this.inflight.get(msg.id);
    // A reply to a request that already timed out, or one sent on an older connection.
    if (!req || req.session !== session) return;
    this.inflight.delete(msg.id);
    if (msg.error !== null && msg.error !== undefined) this.settle(req, rpcError(req.method, msg.error));
    else this.settle(req, undefined, msg.result);
  }

  private onServerRequest(session: Session, id: unknown, method: string, params: unknown[]): void {
    if (method === 'echo') {
      this.stats.echoRequestsAnswered++;
      session.transport?.send({ id, result: params, error: null });
    } else {
      session.transport?.send({ id, result: null, error: 'unknown method' });
    }
  }

  private onNotification(session: Session, method: string, params: unknown[]): void {
    if (method !== 'update' && method !== 'update2' && method !== 'monitor_canceled') return;
    const reg = typeof params[0] === 'string' ? this.monitors.get(params[0]) : undefined;
    if (!reg || reg.session !== session) return;
    if (method === 'monitor_canceled') {
      this.log.warn({ monitor: reg.id, db: reg.db }, 'ovsdb server cancelled a monitor; it is set up again on reconnect');
      reg.session = undefined;
      return;
    }
    reg.sink.update(parseTableUpdates(params[1], method === 'update2' ? 2 : 1));
  }

  private async establishMonitor(session: Session, reg: MonitorRegistration): Promise<void> {
    const schema = parseSchema(await this.sessionRequest(session, 'get_schema', [reg.db]));
    const columns = new Map<string, readonly string[]>();
    for (const [table, req] of Object.entries(reg.tables)) {
      const ts = schema.tables.get(table);
      if (!ts) throw new OvsdbRpcError('monitor', 'unknown table', `database ${reg.db} has no table ${table}`);
      const cols = req.columns ?? [...ts.columns.keys()];
      const unknown = cols.filter((c) => !ts.columns.has(c));
      if (unknown.length) throw new OvsdbRpcError('monitor', 'unknown column', `table ${table} has no column ${unknown.join(', ')}`);
      columns.set(table, cols);
    }
    // Applied inside the reply handler, not after an await: update notifications may follow the reply
    // in the same chunk and must find the monitor already attached to this session.
    const attach = (method: 'monitor_cond' | 'monitor', result: unknown): void => {
      session.monitorMethod = method;
      // Cancelled or superseded while the reply was on its way.
      if (this.session !== session || !this.monitors.has(reg.id)) return;
      reg.session = session;
      reg.method = method;
      reg.sink.reset(schema, columns, parseTableUpdates(result, method === 'monitor_cond' ? 2 : 1));
      this.log.debug({ monitor: reg.id, db: reg.db, method }, 'ovsdb monitor synced');
      if (!reg.readySettled) reg.resolveReady();
    };
    const startMonitor = (method: 'monitor_cond' | 'monitor'): Promise<unknown> =>
      this.sessionRequest(session, method, [reg.db, reg.id, this.monitorRequests(method, columns)], undefined, (result) => attach(method, result));
    const method = session.monitorMethod ?? (this.opts.monitorMethod === 'monitor' ? 'monitor' : 'monitor_cond');
    try {
      await startMonitor(method);
    } catch (e) {
      if (!(method === 'monitor_cond' && this.opts.monitorMethod === 'auto' && e instanceof OvsdbRpcError && e.error === 'unknown method')) throw e;
      await startMonitor('monitor');
    }
  }

  private monitorRequests(method: 'monitor' | 'monitor_cond', columns: ReadonlyMap<string, readonly string[]>): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [table, cols] of columns) out[table] = method === 'monitor_cond' ? [{ columns: cols }] : { columns: cols };
    return out;
  }

  /** A refusal by the server ends the monitor; a connection problem just waits for the next session. */
  private monitorSetupFailed(session: Session, reg: MonitorRegistration, e: unknown): void {
    if (e instanceof OvsdbRpcError || e instanceof OvsdbProtocolError) {
      this.log.error({ monitor: reg.id, db: reg.db, err: e.message }, 'ovsdb monitor refused');
      this.monitors.delete(reg.id);
      this.endMonitor(reg, e);
      return;
    }
    // Anything else (timeout, lost connection) means this session is unusable.
    if (this.session === session) void session.transport?.close(`monitor setup failed: ${(e as Error).message}`);
  }

  private endMonitor(reg: MonitorRegistration, err: Error): void {
    reg.session = undefined;
    if (!reg.readySettled) reg.rejectReady(err);
    reg.sink.ended(err);
  }

  private async cancelMonitor(reg: MonitorRegistration): Promise<void> {
    if (!this.monitors.delete(reg.id)) return;
    const session = reg.session;
    this.endMonitor(reg, new OvsdbError(`monitor ${reg.id} cancelled`));
    if (session && session === this.session) {
      await this.sessionRequest(session, 'monitor_cancel', [reg.id]).catch(() => undefined);
    }
  }

  private startProbe(session: Session): void {
    const interval = this.opts.probeIntervalMs;
    if (interval <= 0) return;
    const tick = (): void => {
      if (!session.transport || session.transport.closed) return;
      if (!session.probing && Date.now() - session.lastReceived >= interval) {
        session.probing = true;
        this.sessionRequest(session, 'echo', [], interval).then(
          () => {
            session.probing = false;
          },
          (e: unknown) => {
            session.probing = false;
            if (e instanceof OvsdbRequestTimeoutError) void session.transport?.close(`no reply to echo within ${interval} ms`);
          },
        );
      }
      session.probeTimer = setTimeout(tick, interval);
    };
    session.probeTimer = setTimeout(tick, interval);
  }
}
