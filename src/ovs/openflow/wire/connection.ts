import { createConnection, type Socket } from 'node:net';
import { logger, type Logger } from '../../../util/log.js';
import {
  aggregateRequest,
  BundleCtrl,
  bundleAdd,
  bundleControl,
  decodeAggregateReply,
  decodeError,
  decodePacketIn,
  errorName,
  hello,
  HEADER_LEN,
  message,
  MsgType,
  OFP_VERSION,
  packetOut,
  setConfig,
  type AggregateStats,
  type FlowSelection,
  type OfpError,
  type PacketIn,
  type PacketOut,
} from './messages.js';

/** The switch refused a message: its OpenFlow error, and which message of the request it was. */
export class OpenFlowError extends Error {
  constructor(
    readonly error: OfpError,
    /** 0-based position of the failed message in a bundle, when the error names one of them. */
    readonly index?: number,
  ) {
    super(errorName(error));
    this.name = 'OpenFlowError';
  }
}

/** The connection closed or a reply did not come in time; the request's fate is unknown. */
export class ConnectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConnectionError';
  }
}

interface Waiter {
  replyType: number;
  resolve: (body: Buffer) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** xids of one bundle's messages, so that errors for them are collected rather than dropped. */
interface BundleWatch {
  first: number;
  last: number;
  errors: Map<number, OfpError>;
}

export interface OfConnectionOptions {
  /** Name for logs. */
  name?: string;
  /** How long one reply may take (a large bundle's commit included). Default 60 s. */
  timeoutMs?: number;
}

const MAX_XID = 0xffffffff;
/** Bytes of a packet-in's frame OVS sends on a table miss (a flow's controller action sets its own length). */
const MISS_SEND_LEN = 0xffff;
/** While packet-ins are wanted, a lost connection is opened again after this long. */
const RECONNECT_MS = 1000;

/**
 * One persistent OpenFlow 1.5 connection to a switch's management socket (`<rundir>/<bridge>.mgmt`):
 * requests matched to replies by xid, echo answered, bundles committed atomically. It connects on first
 * use and again after the switch went away; `onDisconnect` listeners learn of every loss, since the
 * switch may have lost its flows with it. The socket does not keep the process alive while idle.
 */
export class OfConnection {
  private socket?: Socket;
  private connecting?: Promise<Socket>;
  private xid = 1;
  private bundleId = 1;
  private buffer: Buffer = Buffer.alloc(0);
  private readonly waiters = new Map<number, Waiter>();
  private readonly watches = new Set<BundleWatch>();
  private readonly disconnectListeners = new Set<() => void>();
  private readonly packetInListeners = new Set<(p: PacketIn) => void>();
  private reconnectTimer?: NodeJS.Timeout;
  private closed = false;
  /** When the current connection was made (Date.now()); undefined while there is none. */
  private openedAt?: number;
  private readonly timeoutMs: number;
  private readonly log: Logger;
  /** Messages sent and connections made, for benchmarks and tests. */
  readonly stats = { messages: 0, connects: 0, bundles: 0 };

  constructor(
    readonly path: string,
    opts: OfConnectionOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.log = logger('openflow-conn', { switch: opts.name ?? path });
  }

  onDisconnect(fn: () => void): () => void {
    this.disconnectListeners.add(fn);
    return () => this.disconnectListeners.delete(fn);
  }

  get connected(): boolean {
    return !!this.socket;
  }

  /** When the current connection was made, in ms since the epoch; undefined while not connected. */
  get connectedSince(): number | undefined {
    return this.socket ? this.openedAt : undefined;
  }

  /**
   * Receives every packet-in the switch sends. While anyone listens, the connection asks for packet-ins (a
   * management socket gets none otherwise), stays open, and is opened again soon after it was lost.
   */
  onPacketIn(fn: (p: PacketIn) => void): () => void {
    this.packetInListeners.add(fn);
    if (this.packetInListeners.size === 1) {
      if (this.socket) this.socket.write(setConfig(this.nextXid(), MISS_SEND_LEN));
      else this.keepOpen();
    }
    return () => {
      this.packetInListeners.delete(fn);
      if (!this.packetInListeners.size && this.reconnectTimer) {
        clearTimeout(this.reconnectTimer);
        this.reconnectTimer = undefined;
      }
    };
  }

  /** Connects now (or after RECONNECT_MS, again and again, while it fails) for the packet-in listeners. */
  private keepOpen(): void {
    if (this.closed || !this.packetInListeners.size || this.socket || this.reconnectTimer) return;
    this.ensure().catch((e: unknown) => {
      this.log.debug({ err: String(e) }, 'cannot connect for packet-ins yet');
      this.reopenLater();
    });
  }

  /** keepOpen() after RECONNECT_MS, unless one is already due. */
  private reopenLater(): void {
    this.reconnectTimer ??= setTimeout(() => {
      this.reconnectTimer = undefined;
      this.keepOpen();
    }, RECONNECT_MS).unref();
  }

  private nextXid(): number {
    const x = this.xid;
    this.xid = this.xid >= MAX_XID ? 1 : this.xid + 1;
    return x;
  }

  private async ensure(): Promise<Socket> {
    if (this.socket) return this.socket;
    this.closed = false;
    this.connecting ??= this.open().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private open(): Promise<Socket> {
    return new Promise<Socket>((resolve, reject) => {
      const s = createConnection(this.path);
      let greeted = false;
      const fail = (e: Error): void => {
        if (greeted) return;
        greeted = true;
        clearTimeout(timer);
        s.destroy();
        reject(new ConnectionError(`cannot open OpenFlow connection to ${this.path}: ${e.message}`));
      };
      const timer = setTimeout(() => fail(new Error('no HELLO from the switch')), this.timeoutMs);
      s.once('error', fail);
      s.on('connect', () => s.write(hello(this.nextXid())));
      // Until the switch's HELLO arrives, frames are read here; afterwards by onData.
      let early: Buffer = Buffer.alloc(0);
      const onEarly = (chunk: Buffer): void => {
        early = Buffer.concat([early, chunk]);
        if (early.length < HEADER_LEN) return;
        const len = early.readUInt16BE(2);
        if (early.length < len) return;
        const type = early.readUInt8(1);
        const version = early.readUInt8(0);
        if (type !== MsgType.hello) return fail(new Error(`expected HELLO, got message type ${type}`));
        if (version < OFP_VERSION && !this.bitmapOffers(early.subarray(HEADER_LEN, len))) {
          return fail(new Error(`the switch does not speak OpenFlow 1.5 (its HELLO is version ${version}); set the bridge's protocols to include OpenFlow15`));
        }
        greeted = true;
        clearTimeout(timer);
        s.off('data', onEarly);
        s.off('error', fail);
        this.socket = s;
        this.openedAt = Date.now();
        this.buffer = early.subarray(len);
        this.stats.connects++;
        if (this.packetInListeners.size) s.write(setConfig(this.nextXid(), MISS_SEND_LEN));
        s.on('data', (c: Buffer) => this.onData(c));
        s.on('error', (e) => this.log.warn({ err: e.message }, 'OpenFlow connection error'));
        s.on('close', () => this.onClose(s));
        this.updateRef();
        if (this.buffer.length) this.onData(Buffer.alloc(0));
        resolve(s);
      };
      s.on('data', onEarly);
    });
  }

  /** Whether a HELLO's version bitmap element includes OpenFlow 1.5. */
  private bitmapOffers(body: Buffer): boolean {
    for (let off = 0; off + 4 <= body.length; ) {
      const type = body.readUInt16BE(off);
      const len = body.readUInt16BE(off + 2);
      if (len < 4) return false;
      if (type === 1 && off + 8 <= body.length) return (body.readUInt32BE(off + 4) & (1 << OFP_VERSION)) !== 0;
      off += (len + 7) & ~7;
    }
    return false;
  }

  private onClose(s: Socket): void {
    if (this.socket !== s) return;
    this.socket = undefined;
    this.buffer = Buffer.alloc(0);
    const e = new ConnectionError(`OpenFlow connection to ${this.path} closed`);
    for (const [xid, w] of this.waiters) {
      clearTimeout(w.timer);
      this.waiters.delete(xid);
      w.reject(e);
    }
    this.log.info('OpenFlow connection closed; the next request reconnects');
    for (const fn of this.disconnectListeners) fn();
    if (this.packetInListeners.size && !this.closed) this.reopenLater();
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    while (this.buffer.length >= HEADER_LEN) {
      const len = this.buffer.readUInt16BE(2);
      if (len < HEADER_LEN) {
        this.socket?.destroy(new Error(`bad OpenFlow message length ${len}`));
        return;
      }
      if (this.buffer.length < len) return;
      const type = this.buffer.readUInt8(1);
      const xid = this.buffer.readUInt32BE(4);
      const body = this.buffer.subarray(HEADER_LEN, len);
      this.buffer = this.buffer.subarray(len);
      this.dispatch(type, xid, body);
    }
  }

  private dispatch(type: number, xid: number, body: Buffer): void {
    if (type === MsgType.echoRequest) {
      this.socket?.write(message(MsgType.echoReply, xid, Buffer.from(body)));
      return;
    }
    if (type === MsgType.error) {
      const err = decodeError(Buffer.from(body));
      for (const w of this.watches) {
        if (xid >= w.first && xid <= w.last) w.errors.set(xid, err);
      }
      const waiter = this.waiters.get(xid);
      if (waiter) this.settle(xid)?.reject(new OpenFlowError(err));
      return;
    }
    if (type === MsgType.packetIn) {
      if (!this.packetInListeners.size) return;
      let p: PacketIn;
      try {
        p = decodePacketIn(body);
      } catch (e) {
        this.log.warn({ err: String(e) }, 'undecodable packet-in');
        return;
      }
      for (const fn of this.packetInListeners) fn(p);
      return;
    }
    const waiter = this.waiters.get(xid);
    if (waiter && waiter.replyType === type) this.settle(xid)?.resolve(Buffer.from(body));
    // Anything else (port status, a reply nobody waits for) is not for us.
  }

  private settle(xid: number): Waiter | undefined {
    const w = this.waiters.get(xid);
    if (!w) return undefined;
    clearTimeout(w.timer);
    this.waiters.delete(xid);
    this.updateRef();
    return w;
  }

  /** The socket holds the process open only while replies are awaited. */
  private updateRef(): void {
    if (!this.socket) return;
    if (this.waiters.size) this.socket.ref();
    else this.socket.unref();
  }

  private expect(xid: number, replyType: number): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!this.waiters.delete(xid)) return;
        reject(new ConnectionError(`no reply from ${this.path} within ${this.timeoutMs} ms (xid ${xid})`));
        // The session's state is unknown now: start afresh.
        this.socket?.destroy();
      }, this.timeoutMs);
      this.waiters.set(xid, { replyType, resolve, reject, timer });
      this.updateRef();
    });
  }

  private write(s: Socket, data: Buffer | Buffer[]): void {
    const list = Array.isArray(data) ? data : [data];
    this.stats.messages += list.length;
    s.write(list.length === 1 ? list[0]! : Buffer.concat(list));
  }

  /** Sends a request built with the given xid and waits for its reply of `replyType` (body returned). */
  async request(build: (xid: number) => Buffer, replyType: number): Promise<Buffer> {
    const s = await this.ensure();
    const xid = this.nextXid();
    const reply = this.expect(xid, replyType);
    this.write(s, build(xid));
    return reply;
  }

  /** Flow count and counters of the flows a selection matches (one aggregate statistics request). */
  async aggregate(sel: FlowSelection): Promise<AggregateStats> {
    return decodeAggregateReply(await this.request((xid) => aggregateRequest(xid, sel), MsgType.multipartReply));
  }

  /** Resolves once the switch has processed everything sent before. */
  async barrier(): Promise<void> {
    await this.request((xid) => message(MsgType.barrierRequest, xid), MsgType.barrierReply);
  }

  /**
   * Applies the messages (each built for the xid given) as one atomic, ordered bundle: all or nothing.
   * A refusal rejects with OpenFlowError whose `index` names the message the switch refused, when it did.
   */
  async bundle(build: readonly ((xid: number) => Buffer)[]): Promise<void> {
    if (!build.length) return;
    const s = await this.ensure();
    const id = this.bundleId;
    this.bundleId = this.bundleId >= MAX_XID ? 1 : this.bundleId + 1;
    this.stats.bundles++;
    // Every frame is built before any reply is awaited: a message that cannot be built leaves nothing pending.
    // A message the switch cannot even decode is left out of the bundle with an error of its own: the barrier
    // after the adds says every such error has arrived, and then the bundle is discarded.
    const openXid = this.nextXid();
    const xids: number[] = [];
    const frames: Buffer[] = [bundleControl(openXid, id, BundleCtrl.openRequest)];
    for (const b of build) {
      const xid = this.nextXid();
      xids.push(xid);
      frames.push(bundleAdd(id, b(xid)));
    }
    const barrierXid = this.nextXid();
    frames.push(message(MsgType.barrierRequest, barrierXid));
    const watch: BundleWatch = { first: xids[0]!, last: xids[xids.length - 1]!, errors: new Map() };
    // xids wrap at 2^32: a bundle spanning the wrap is watched by position instead of range.
    const wrapped = watch.last < watch.first;
    if (wrapped) {
      watch.first = 0;
      watch.last = MAX_XID;
    }
    this.watches.add(watch);
    const index = (xid: number): number | undefined => {
      const i = xids.indexOf(xid);
      return i >= 0 ? i : undefined;
    };
    const firstError = (): OpenFlowError | undefined => {
      for (const [xid, err] of watch.errors) {
        const i = index(xid);
        if (i !== undefined) return new OpenFlowError(err, i);
      }
      return undefined;
    };
    try {
      const replies = Promise.all([this.expect(openXid, MsgType.bundleControl), this.expect(barrierXid, MsgType.barrierReply)]);
      this.write(s, frames);
      await replies;
      const refused = firstError();
      if (refused) {
        await this.control(id, BundleCtrl.discardRequest).catch(() => undefined);
        throw refused;
      }
      try {
        await this.control(id, BundleCtrl.commitRequest);
      } catch (e) {
        // The switch reports the message that failed before it fails the commit.
        throw firstError() ?? e;
      }
    } finally {
      this.watches.delete(watch);
    }
  }

  /**
   * Injects frames into the pipeline (OFPT_PACKET_OUT each), then waits for a barrier: resolves once the switch
   * has processed them all, rejects with the OpenFlowError of the first it refused.
   */
  async packetOut(packets: readonly PacketOut[]): Promise<void> {
    if (!packets.length) return;
    const s = await this.ensure();
    const frames = packets.map((p) => packetOut(this.nextXid(), p));
    const xids = frames.map((f) => f.readUInt32BE(4));
    const barrierXid = this.nextXid();
    const watch: BundleWatch = { first: xids[0]!, last: xids[xids.length - 1]!, errors: new Map() };
    if (watch.last < watch.first) [watch.first, watch.last] = [0, MAX_XID];
    this.watches.add(watch);
    try {
      const done = this.expect(barrierXid, MsgType.barrierReply);
      this.write(s, [...frames, message(MsgType.barrierRequest, barrierXid)]);
      await done;
      for (const [xid, err] of watch.errors) {
        const i = xids.indexOf(xid);
        if (i >= 0) throw new OpenFlowError(err, i);
      }
    } finally {
      this.watches.delete(watch);
    }
  }

  private async control(bundleId: number, type: number): Promise<void> {
    await this.request((xid) => bundleControl(xid, bundleId, type), MsgType.bundleControl);
  }

  /** Closes the connection for good (a later request opens it again). */
  close(): void {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.socket?.destroy();
  }
}

const shared = new Map<string, OfConnection>();

/** The process's one connection to this management socket. */
export function sharedConnection(path: string, name?: string): OfConnection {
  let c = shared.get(path);
  if (!c) {
    c = new OfConnection(path, { name });
    shared.set(path, c);
  }
  return c;
}
