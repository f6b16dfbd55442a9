import { JsonStreamSplitter } from '../../../src/ovs/ovsdb/framing.js';
import { OvsdbProtocolError } from '../../../src/ovs/ovsdb/errors.js';
import { formatRemote, parseRemote } from '../../../src/ovs/ovsdb/transport.js';

// Messages chosen to trip a naive splitter: braces/brackets and quotes inside strings, escaped
// backslashes right before a closing quote, \u escapes, and 2-, 3- and 4-byte UTF-8 characters.
const MESSAGES: unknown[] = [
  { id: 1, method: 'echo', params: [] },
  { id: null, method: 'update2', params: ['m', { Port: { 'a-b': { modify: { external_ids: ['map', [['k', '}{][']]] } } } }] },
  { s: 'quote " inside, brace } and bracket ] and {[', t: 'backslash at end \\', u: '\\"' },
  { unicode: 'café 中文 😀 \u007b \u0000 ends with é', nested: [[[[{ deep: ['é'] }]]]] },
  [1, '2', { three: [3] }],
  {},
  { empty: '', arr: [], obj: {} },
];

function stream(sep = ''): Buffer {
  return Buffer.from(MESSAGES.map((m) => JSON.stringify(m)).join(sep), 'utf8');
}

function feed(chunks: Uint8Array[]): unknown[] {
  const splitter = new JsonStreamSplitter();
  const out: unknown[] = [];
  for (const c of chunks) for (const text of splitter.push(c)) out.push(JSON.parse(text));
  expect(splitter.idle).toBe(true);
  return out;
}

describe('JsonStreamSplitter', () => {
  it('splits back-to-back messages with no separator', () => {
    const splitter = new JsonStreamSplitter();
    const texts = splitter.push(Buffer.from('{"a":1}{"b":[1,2]}[3]{"c":"}"}'));
    expect(texts).toEqual(['{"a":1}', '{"b":[1,2]}', '[3]', '{"c":"}"}']);
  });

  it('returns every message exactly once for every single split point', () => {
    const bytes = stream();
    for (let i = 0; i <= bytes.length; i++) {
      expect(feed([bytes.subarray(0, i), bytes.subarray(i)])).toEqual(MESSAGES);
    }
  });

  it('handles every pair of split points (three chunks)', () => {
    const bytes = stream();
    // Every pair over the region with the tricky strings and multi-byte characters.
    const from = bytes.indexOf(Buffer.from('quote'));
    const to = bytes.indexOf(Buffer.from('nested'));
    for (let i = from; i < to; i++) {
      for (let j = i; j < to; j++) {
        expect(feed([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)])).toEqual(MESSAGES);
      }
    }
  });

  it('handles one byte at a time, including inside multi-byte UTF-8 sequences', () => {
    const bytes = stream();
    const chunks = [...bytes].map((b) => Uint8Array.of(b));
    expect(feed(chunks)).toEqual(MESSAGES);
  });

  it('handles random chunking and whitespace between messages', () => {
    const bytes = stream('\n  \t');
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 200; round++) {
      const chunks: Uint8Array[] = [];
      for (let at = 0; at < bytes.length; ) {
        const len = 1 + rand(40);
        chunks.push(bytes.subarray(at, at + len));
        at += len;
      }
      expect(feed(chunks)).toEqual(MESSAGES);
    }
  });

  it('keeps a partial message until it completes and does not alias the caller buffer', () => {
    const splitter = new JsonStreamSplitter();
    const buf = Buffer.from('{"k":"v');
    expect(splitter.push(buf)).toEqual([]);
    expect(splitter.idle).toBe(false);
    buf.fill(0x20);
    expect(splitter.push(Buffer.from('al"}'))).toEqual(['{"k":"val"}']);
    expect(splitter.idle).toBe(true);
  });

  it('rejects a stream that is not JSON objects/arrays', () => {
    const splitter = new JsonStreamSplitter();
    expect(() => splitter.push(Buffer.from('{"a":1} x'))).toThrow(OvsdbProtocolError);
  });

  it('rejects a message larger than the limit', () => {
    const splitter = new JsonStreamSplitter(16);
    expect(() => splitter.push(Buffer.from('{"a":"0123456789abcdef'))).toThrow(/exceeds 16 bytes/);
  });
});

describe('parseRemote', () => {
  it('parses unix and tcp (IPv4, IPv6) remotes and formats them back', () => {
    expect(parseRemote('unix:/run/ovs/db.sock')).toEqual({ kind: 'unix', path: '/run/ovs/db.sock' });
    expect(parseRemote('tcp:127.0.0.1:6640')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 6640 });
    expect(parseRemote('tcp:[::1]:6641')).toEqual({ kind: 'tcp', host: '::1', port: 6641 });
    for (const r of ['unix:/x', 'tcp:10.0.0.1:1', 'tcp:[fd00::1]:65535']) expect(formatRemote(parseRemote(r))).toBe(r);
  });

  it('rejects what it cannot connect to', () => {
    for (const r of ['unix:', 'tcp:127.0.0.1', 'tcp:::1:6640', 'tcp:h:0', 'tcp:h:70000', 'ssl:1.2.3.4:6640', 'punix:/x']) {
      expect(() => parseRemote(r)).toThrow(TypeError);
    }
  });
});
