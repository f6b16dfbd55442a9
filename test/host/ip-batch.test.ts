import { batchWord, checkIfname, checkNetnsRef, IpBatch, isolateFromHostStackCommand, sysctlCommand, txOffloadOffCommand, UnsafeArgumentError } from '../../src/host/ip.js';

/** What iproute2 6.1 (lib/utils.c getcmdline + makeargs) reads from one batch line: its argument vector. */
function iproute2Words(line: string): string[] {
  const text = line.includes('#') ? line.slice(0, line.indexOf('#')) : line;
  const words: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
    if (i >= text.length) break;
    const q = text[i]!;
    if (q === '"' || q === "'") {
      const end = text.indexOf(q, i + 1);
      if (end < 0) throw new Error('Unterminated quoted string');
      words.push(text.slice(i + 1, end));
      i = end + 1;
    } else {
      let end = i;
      while (end < text.length && !' \t\r\n'.includes(text[end]!)) end++;
      words.push(text.slice(i, end));
      i = end;
    }
  }
  return words;
}

describe('ip batch words', () => {
  it('passes plain words as they are and quotes the ones iproute2 would split or misread', () => {
    for (const w of ['eth0', '10.0.0.1/24', '/var/run/netns/p-1', "it's", 'a"b', 'x\\y']) expect(batchWord(w)).toBe(w);
    for (const w of ['', 'a b', '"lead', "'lead", 'tail\\', "q'x y", 'q"x y']) {
      const line = `set ${batchWord(w)} end`;
      expect(iproute2Words(line)).toEqual(['set', w, 'end']);
    }
  });

  it("refuses what no quoting carries: control characters (newline, CR, tab, NUL) and '#'", () => {
    for (const w of ['/run/netns/x\nlink add y type veth peer name z', 'a\rb', 'a\tb', 'a\0b', 'a\u007fb', 'a\u0085b', 'x#y', '"#"']) {
      expect(() => batchWord(w)).toThrow(UnsafeArgumentError);
    }
    // A word with a space, a leading quote and both quote characters has no quoting.
    expect(() => batchWord(`"a' b"`)).toThrow(/both quote characters/);
  });

  it('one command is one line with exactly its words, whatever the values', () => {
    const odd = ['a b', "'x", 'y\\', ''];
    const b = new IpBatch().command('link', 'set', 'dev', 'eth0', 'alias', ...odd);
    expect(b.lines).toHaveLength(1);
    expect(iproute2Words(b.lines[0]!)).toEqual(['link', 'set', 'dev', 'eth0', 'alias', ...odd]);
    expect(() => new IpBatch().command(...Array<string>(100).fill('x'))).toThrow(/at most 99 words/);
    expect(() => new IpBatch().command()).toThrow(RangeError);
  });

  it('a netns that would add a batch line is refused while building, naming the value', () => {
    const evil = '/var/run/netns/pod\nlink add evil0 type bridge';
    const err = (() => {
      try {
        new IpBatch().addVeth('h0', 'eth0', { peerNetns: evil });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(UnsafeArgumentError);
    expect(err).toMatchObject({ what: 'netns', value: evil });
  });

  it('namespaces are absolute paths or names iproute2 cannot take for a process id', () => {
    expect(checkNetnsRef('/proc/42/ns/net')).toBe('/proc/42/ns/net');
    expect(checkNetnsRef('lab-node1')).toBe('lab-node1');
    for (const bad of ['1', '0x1', 'run/netns/x', '-x', '..', 'a b', '']) expect(() => checkNetnsRef(bad)).toThrow(UnsafeArgumentError);
    expect(() => new IpBatch().setLink('eth0', { netns: '1' })).toThrow(/netns "1"/);
  });

  it('device names follow the kernel rules and cannot pass for options', () => {
    for (const ok of ['eth0', 'pod-12345678', 'a.b', 'x'.repeat(15)]) expect(checkIfname(ok)).toBe(ok);
    for (const bad of ['', 'x'.repeat(16), 'a/b', 'a:b', 'a b', '.', '..', '-h', 'e\n']) expect(() => checkIfname(bad)).toThrow(UnsafeArgumentError);
    expect(() => new IpBatch().addVeth('ok0', 'eth0\nlink del ok0')).toThrow(/peer name/);
    expect(() => new IpBatch().delLink('-help')).toThrow(UnsafeArgumentError);
    expect(() => txOffloadOffCommand('-h')).toThrow(UnsafeArgumentError);
  });

  it('sysctl assignments cannot be split or turned into options', () => {
    expect(sysctlCommand({ 'net.ipv4.ip_forward': 1 })).toEqual(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    expect(isolateFromHostStackCommand('a.b')).toContain('net.ipv4.conf.a/b.arp_ignore=8');
    for (const bad of ['a=b', '-w', 'a b', '']) expect(() => sysctlCommand({ [bad]: 1 })).toThrow(UnsafeArgumentError);
    expect(() => sysctlCommand({ 'net.ipv4.ip_forward': '1\n' })).toThrow(UnsafeArgumentError);
    // A device name the kernel allows but sysctl cannot address is refused, not half-applied.
    expect(() => isolateFromHostStackCommand('x=y')).toThrow(UnsafeArgumentError);
  });
});
