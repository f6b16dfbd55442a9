/**
 * An append-only big-endian byte buffer that grows as needed: messages are built in one pass rather than
 * concatenated from many small buffers (encoding ten thousand flows is on the policy fast path).
 */
export class ByteWriter {
  private buf: Buffer;
  length = 0;

  constructor(initial = 256) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  u8(v: number): this {
    this.room(1);
    this.buf[this.length++] = v;
    return this;
  }

  u16(v: number): this {
    this.room(2);
    this.buf.writeUInt16BE(v, this.length);
    this.length += 2;
    return this;
  }

  u32(v: number): this {
    this.room(4);
    this.buf.writeUInt32BE(v >>> 0, this.length);
    this.length += 4;
    return this;
  }

  u64(v: bigint): this {
    this.room(8);
    this.buf.writeBigUInt64BE(v, this.length);
    this.length += 8;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
    return this;
  }

  zeros(n: number): this {
    this.room(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
    return this;
  }

  /** Pads with zeros to a multiple of 8 bytes. */
  pad8(): this {
    return this.zeros((8 - (this.length % 8)) % 8);
  }

  /** Overwrites a 16-bit field written earlier (a length known only now). */
  setU16(at: number, v: number): void {
    this.buf.writeUInt16BE(v, at);
  }

  /** A copy of what was written. */
  finish(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.length));
  }
}

const LIMITS = new Map<number, bigint>();

/** Throws unless v is an unsigned integer of at most `bits` bits (cheap: no BigInt made for numbers). */
export function checkFits(field: string, v: number | bigint, bits: number): void {
  if (typeof v === 'number') {
    if (Number.isSafeInteger(v) && v >= 0 && (bits >= 53 || v < 2 ** bits)) return;
    throw new RangeError(Number.isSafeInteger(v) ? `${field}: ${v} does not fit in ${bits} bits` : `${field}: ${v} is not an integer`);
  }
  let limit = LIMITS.get(bits);
  if (limit === undefined) LIMITS.set(bits, (limit = 1n << BigInt(bits)));
  if (v < 0n || v >= limit) throw new RangeError(`${field}: ${v} does not fit in ${bits} bits`);
}
