import { OvsdbProtocolError } from './errors.js';

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isJsonWhitespace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

/** Default cap on one message; a full vswitch database snapshot is far smaller. */
export const DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

/**
 * Splits a byte stream of back-to-back JSON texts (how ovsdb-server writes: no newline, no length
 * prefix) into complete texts. It scans bytes, not characters: every structural character is ASCII
 * and never occurs inside a multi-byte UTF-8 sequence, so a character split across chunks is simply
 * carried over and decoded once its message is complete.
 */
export class JsonStreamSplitter {
  /** Bytes of the message in progress that arrived in earlier chunks. */
  private carried: Buffer[] = [];
  private carriedBytes = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;

  constructor(private readonly maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES) {}

  /** True when no partial message is buffered. */
  get idle(): boolean {
    return this.depth === 0;
  }

  /** Feeds one chunk; returns the JSON texts it completes, in order. */
  push(chunk: Uint8Array): string[] {
    const texts: string[] = [];
    // Where the current message starts inside this chunk; 0 when it began in an earlier chunk.
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.depth === 0) {
        if (isJsonWhitespace(b)) continue;
        if (b !== OPEN_BRACE && b !== OPEN_BRACKET) {
          throw new OvsdbProtocolError(`expected a JSON object or array, got byte 0x${b.toString(16)}`);
        }
        start = i;
        this.depth = 1;
        continue;
      }
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (b === BACKSLASH) this.escaped = true;
        else if (b === QUOTE) this.inString = false;
        continue;
      }
      if (b === QUOTE) this.inString = true;
      else if (b === OPEN_BRACE || b === OPEN_BRACKET) this.depth++;
      else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
        this.depth--;
        if (this.depth === 0) {
          texts.push(this.complete(chunk.subarray(start, i + 1)));
        }
      }
    }
    if (this.depth > 0) {
      // Copy: the caller may reuse its buffer.
      const rest = Buffer.from(chunk.subarray(start));
      this.carried.push(rest);
      this.carriedBytes += rest.length;
      if (this.carriedBytes > this.maxMessageBytes) {
        throw new OvsdbProtocolError(`message exceeds ${this.maxMessageBytes} bytes`);
      }
    }
    return texts;
  }

  private complete(tail: Uint8Array): string {
    let text: string;
    if (this.carried.length === 0) {
      text = Buffer.from(tail.buffer, tail.byteOffset, tail.byteLength).toString('utf8');
    } else {
      this.carried.push(Buffer.from(tail));
      text = Buffer.concat(this.carried).toString('utf8');
    }
    this.carried = [];
    this.carriedBytes = 0;
    return text;
  }
}
