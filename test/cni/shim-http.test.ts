import { HttpProtocolError, parseReply } from '../../src/cni/shim-http.js';

const b = (s: string) => Buffer.from(s, 'latin1');

describe('the shim\'s HTTP reply parser', () => {
  it('waits for a Content-Length body, then returns it', () => {
    const head = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n';
    expect(parseReply(b(`${head}{"result"`), false)).toBeUndefined();
    expect(parseReply(b(`${head}{"result":1}`), false)).toEqual({ status: 200, headers: { 'content-type': 'application/json', 'content-length': '11' }, body: '{"result":1' });
    expect(() => parseReply(b(`${head}{"res`), true)).toThrow('connection closed in the middle of the answer');
  });

  it('decodes a chunked body', () => {
    const head = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';
    expect(parseReply(b(`${head}4\r\n{"a"\r\n`), false)).toBeUndefined();
    expect(parseReply(b(`${head}4\r\n{"a"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n`), false)?.body).toBe('{"a":1}');
  });

  it('without a length, the body ends with the connection; UTF-8 survives', () => {
    const text = '{"msg":"grüße"}';
    expect(parseReply(Buffer.concat([b('HTTP/1.0 500 Oops\r\n\r\n'), Buffer.from(text)]), false)).toBeUndefined();
    expect(parseReply(Buffer.concat([b('HTTP/1.0 500 Oops\r\n\r\n'), Buffer.from(text)]), true)).toMatchObject({ status: 500, body: text });
  });

  it('refuses what is not HTTP', () => {
    expect(() => parseReply(b('SSH-2.0\r\n\r\n'), false)).toThrow(HttpProtocolError);
    expect(() => parseReply(b('HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n'), false)).toThrow('bad content-length');
    expect(() => parseReply(b('HTTP/1.1 200'), true)).toThrow('incomplete HTTP answer');
  });
});
