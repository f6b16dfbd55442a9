import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseConfList } from '../../src/cni/conf.js';
import { CniCode } from '../../src/cni/errors.js';
import { CNI_ENDPOINT, DEFAULT_CNI_SOCKET, DEFAULT_SHIM_TIMEOUT_MS, FORWARDED_ENV, MAX_ENV_VALUE_BYTES, MAX_STDIN_BYTES } from '../../src/cni/shim-protocol.js';
import { CniRuntime, NetworkError } from '../../src/cni/runtime.js';
import { CniServer } from '../../src/primary/cniserver/index.js';
import type { CniRequest, GcRequest } from '../../src/primary/cniserver/types.js';
import { buildShim, notReady, TestDriver } from '../primary/cniserver/helpers.js';
import { Scratch } from '../primary/cniserver/scratch.js';
import { CURRENT_VERSION, SUPPORTED_VERSIONS } from '../../src/cni/version.js';

const POD_ARGS = 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=ctr1';

describe('seine-cni shim (a real process) against the CNI server', () => {
  let scratch: Scratch;
  let dir: string;
  let bin: string;
  let socket: string;
  let driver: TestDriver;
  let server: CniServer;
  const netServers: NetServer[] = [];

  const env = (command: string | undefined, over: Record<string, string> = {}) => ({
    ...(command ? { CNI_COMMAND: command } : {}),
    CNI_CONTAINERID: 'ctr1',
    CNI_NETNS: '/var/run/netns/pod1',
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/opt/cni/bin',
    CNI_ARGS: POD_ARGS,
    ...over,
  });
  const conf = (over: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: '1.0.0', name: 'seine', type: 'seine', cniSocket: socket, ...over });
  const shim = (command: string | undefined, stdin: string | Buffer = conf(), over: Record<string, string> = {}) => scratch.exec(bin, env(command, over), stdin);

  beforeAll(async () => {
    scratch = await Scratch.create('shim');
    dir = scratch.dir;
    bin = buildShim(join(dir, 'install'));
    socket = join(dir, 'cni.sock');
    driver = new TestDriver();
    server = new CniServer({ socketPath: socket, driver, requestTimeoutMs: 10_000 });
    await server.start();
  });
  afterEach(() => {
    driver.hook = undefined;
  });
  afterAll(async () => {
    await server?.close();
    for (const s of netServers) await new Promise((r) => s.close(r));
    await scratch?.close();
  });

  it('repeats the wire contract of src/cni/shim-protocol.ts (its Go constants)', () => {
    const go = readFileSync(resolve('cmd/seine-cni/main.go'), 'utf8');
    // `name = value`, without a trailing comment.
    const constant = (name: string) => new RegExp(`\\b${name}\\s*=\\s*(.+?)\\s*(?:// .*)?$`, 'm').exec(go)?.[1] ?? '';
    const num = (name: string) => Number(constant(name).replace(/_/g, ''));
    expect(JSON.parse(constant('cniEndpoint'))).toBe(CNI_ENDPOINT);
    expect(JSON.parse(constant('defaultSocket'))).toBe(DEFAULT_CNI_SOCKET);
    expect([num('defaultTimeoutMs'), num('maxStdinBytes'), num('maxEnvValueBytes')]).toEqual([DEFAULT_SHIM_TIMEOUT_MS, MAX_STDIN_BYTES, MAX_ENV_VALUE_BYTES]);
    expect(JSON.parse(`[${/forwardedEnv = \[\]string\{(.*)\}/.exec(go)![1]}]`)).toEqual([...FORWARDED_ENV]);
  });

  it('answers VERSION itself (no agent needed, stdin not read), with the versions the agent supports', async () => {
    const r = await scratch.exec(bin, { CNI_COMMAND: 'VERSION' });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ cniVersion: CURRENT_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] });
  });

  it('without CNI_COMMAND: code 4 on stdout, exit 1, what it is on stderr', async () => {
    const r = await shim(undefined);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ cniVersion: '1.1.0', code: CniCode.InvalidEnvironment, msg: 'required env variables [CNI_COMMAND] missing' });
    expect(r.stderr).toContain('Seine CNI plugin');
    expect((await shim('FROB')).stdout).toContain('unknown CNI_COMMAND: FROB');
  });

  it('forwards ADD and prints the result in the config version', async () => {
    const before = driver.requests.length;
    const r = await shim('ADD', conf({ cniVersion: '0.4.0' }));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result).toMatchObject({ cniVersion: '0.4.0', ips: [{ version: '4', gateway: '10.244.1.1' }] });
    const req = driver.requests[before] as CniRequest;
    expect(req).toMatchObject({ command: 'ADD', containerId: 'ctr1', netns: '/var/run/netns/pod1', ifname: 'eth0', cniPath: ['/opt/cni/bin'], pod: { namespace: 'default', name: 'web-0' } });
    expect(req.config.cniSocket).toBe(socket);
  });

  it('DEL and CHECK print nothing on success', async () => {
    for (const cmd of ['DEL', 'CHECK']) {
      const r = await shim(cmd);
      expect([r.code, r.stdout]).toEqual([0, '']);
    }
  });

  it('prints the agent\'s CNI errors with exit 1', async () => {
    driver.hook = () => {
      throw notReady();
    };
    const status = await shim('STATUS', conf({ cniVersion: '1.1.0' }));
    expect(status.code).toBe(1);
    expect(JSON.parse(status.stdout)).toEqual({ cniVersion: '1.1.0', code: CniCode.PluginNotAvailable, msg: 'datapath not ready', details: 'bridge br-int missing' });
    driver.hook = () => Promise.reject(new Error('veth creation failed'));
    const add = await shim('ADD');
    expect([add.code, JSON.parse(add.stdout)]).toEqual([1, { cniVersion: '1.0.0', code: CniCode.Internal, msg: 'veth creation failed' }]);
    const bad = await shim('ADD', conf({ cniVersion: '0.2.0' }));
    expect([bad.code, JSON.parse(bad.stdout).code]).toEqual([1, CniCode.IncompatibleVersion]);
  });

  it('reports stdin and config problems it must understand itself', async () => {
    const garbage = await shim('ADD', 'not json');
    expect([garbage.code, JSON.parse(garbage.stdout).code]).toEqual([1, CniCode.DecodeFailure]);
    const relative = await shim('ADD', conf({ cniSocket: 'cni.sock', cniVersion: '0.3.1' }));
    expect(JSON.parse(relative.stdout)).toEqual({ cniVersion: '0.3.1', code: CniCode.InvalidNetworkConfig, msg: 'invalid network configuration', details: 'cniSocket: must be an absolute path without control characters (got "cni.sock")' });
    const huge = await shim('ADD', conf({ padding: 'x'.repeat(1 << 20) }));
    expect(JSON.parse(huge.stdout)).toMatchObject({ code: CniCode.IoFailure, msg: 'configuration on stdin is too large' });
    const empty = await shim('ADD', '');
    expect(JSON.parse(empty.stdout)).toMatchObject({ code: CniCode.DecodeFailure });
    const timeout = await shim('ADD', conf({ cniTimeoutSeconds: 'soon' }));
    expect(JSON.parse(timeout.stdout).details).toContain('cniTimeoutSeconds');
  });

  describe('hostile input: a CNI error with the right code and a short message, never an internal error', () => {
    /** A failed call: exit 1, one short JSON error on stdout, no stack trace on stderr. */
    const expectCniError = (r: { code: number | null; stdout: string; stderr: string }, code: number) => {
      expect(r.code).toBe(1);
      expect(r.stdout.trim().split('\n')).toHaveLength(1);
      expect(r.stdout.length).toBeLessThan(600);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(JSON.parse(r.stdout).code).toBe(code);
    };

    it('cniTimeoutSeconds beyond what a timer holds is code 7, also on DEL (which must not report success)', async () => {
      const before = driver.requests.length;
      for (const cmd of ['ADD', 'DEL']) {
        for (const t of [2147484, 1e300, -1, 0]) {
          const r = await shim(cmd, conf({ cniTimeoutSeconds: t }));
          expectCniError(r, CniCode.InvalidNetworkConfig);
          expect(JSON.parse(r.stdout).details).toMatch(/^cniTimeoutSeconds: must be a number of seconds above 0 and at most 2147483\.647 /);
        }
      }
      expect(driver.requests.length).toBe(before);
      // The largest a timer holds still works.
      expect((await shim('DEL', conf({ cniTimeoutSeconds: 2147483.647 }))).code).toBe(0);
    });

    it('deeply nested cniSocket or cniTimeoutSeconds: code 7 with a short message', async () => {
      const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
      for (const key of ['cniSocket', 'cniTimeoutSeconds']) {
        const r = await shim('ADD', conf({ [key]: 'PLACEHOLDER' }).replace('"PLACEHOLDER"', deep));
        expectCniError(r, CniCode.InvalidNetworkConfig);
        expect(JSON.parse(r.stdout).details).toMatch(new RegExp(`^${key}: .*\\(got array\\)$`));
      }
    });

    it('deep nesting anywhere else is refused by the agent with code 6', async () => {
      const r = await shim('ADD', conf({ args: 'PLACEHOLDER' }).replace('"PLACEHOLDER"', `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`));
      expectCniError(r, CniCode.DecodeFailure);
    });

    it('accepts exactly the JSON that the agent (JSON.parse) accepts: code 6 for the rest, 7 for a non-object', async () => {
      const sock = JSON.stringify(join(dir, 'missing.sock'));
      const docs: Array<string | Buffer> = [
        // Valid, with the agent not there: code 11.
        ` \t\r\n{"cniSocket":${sock}} \n`,
        `{"cniSocket":${sock},"a":[1,-0,0.5,1e5,1E+5,-1.5e-3,true,false,null,"\\u00e9\\n\\t\\"\\\\\\/\\ud800"]}`,
        `{"cniSocket":${sock},"a":{},"b":[],"c":[{}],"d":{"e":[[]]},"":1,"f":"\u007f"}`,
        `{"cniSocket":"relative","cniSocket":${sock}}`,
        `{"cniSocket":${sock},"deep":${'['.repeat(20_000)}${']'.repeat(20_000)}}`,
        Buffer.concat([Buffer.from(`{"cniSocket":${sock},"a":"`), Buffer.from([0xff, 0xc3, 0x28]), Buffer.from('"}')]),
        // Valid, not an object: code 7.
        '[]', '1', '"s"', 'null', ' true ',
        // Not JSON: code 6.
        '', ' ', '{"a":1,}', '[1,]', '{"a" 1}', "{'a':1}", '{"a":01}', '{"a":1.}', '{"a":.5}', '{"a":+1}', '{"a":-}', '{"a":1e}',
        '{"a":"\t"}', '{"a":"\u0000"}', '{"a":"\\x"}', '{"a":"\\u12"}', '{"a":tru}', '{"a":NaN}', '{"a":Infinity}', '{} {}', '{}x',
        '\ufeff{}', '{"a":1', '"abc', '{"a":[1}', '{"a":{]}', '{,}', '{"a":1,,"b":2}', '/*c*/{}', '{"a":[1 2]}', '{"a":1 "b":2}',
        Buffer.concat([Buffer.from('{"a":1}'), Buffer.from([0xff])]),
      ];
      for (const doc of docs) {
        let expected: number;
        try {
          const v: unknown = JSON.parse(Buffer.from(doc).toString('utf8'));
          expected = typeof v === 'object' && v !== null && !Array.isArray(v) ? CniCode.TryAgainLater : CniCode.InvalidNetworkConfig;
        } catch {
          expected = CniCode.DecodeFailure;
        }
        const r = await shim('ADD', doc);
        const what = Buffer.from(doc).toString('utf8').slice(0, 80);
        expect({ what, code: JSON.parse(r.stdout).code }).toEqual({ what, code: expected });
      }
    });

    it('a valid config of 900 KB, mostly newlines, is served (the agent takes what the shim takes)', async () => {
      const stdin = conf().replace('{', `{${'\n'.repeat(900_000)}`);
      const r = await shim('ADD', stdin);
      expect(r.stderr).toBe('');
      expect([r.code, JSON.parse(r.stdout).cniVersion]).toEqual([0, '1.0.0']);
    });

    it.each([
      ['CNI_IFNAME of 8 characters but 16 bytes', { CNI_IFNAME: 'éééééééé' }],
      ['CNI_IFNAME with a newline', { CNI_IFNAME: 'eth0\nx' }],
      ['CNI_NETNS with a newline', { CNI_NETNS: '/var/run/netns/pod1\naddr flush dev eth0' }],
      ['CNI_NETNS with an escape character', { CNI_NETNS: '/var/run/netns/\u001b[2Jpod1' }],
      ['CNI_CONTAINERID with a tab', { CNI_CONTAINERID: 'ctr\t1' }],
      ['CNI_ARGS value with a carriage return', { CNI_ARGS: `${POD_ARGS}\r` }],
      ['CNI_ARGS key with a control character', { CNI_ARGS: `${POD_ARGS};K8S\u0001=1` }],
    ])('%s: code 4, before anything is done', async (_name, over) => {
      const before = driver.requests.length;
      expectCniError(await shim('ADD', conf(), over), CniCode.InvalidEnvironment);
      expect(driver.requests.length).toBe(before);
    });

    it('fuzzed invocations get a CNI error code or succeed, never code 999 or a stack trace', async () => {
      // Deterministic: the same cases on every run.
      let seed = 0x5e1e;
      const rand = (n: number) => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed % n;
      };
      const pick = <T>(xs: readonly T[]): T => xs[rand(xs.length)]!;
      const nasty = ['', ' ', '\n', '\u0000', '\u007f', 'é'.repeat(8), '\ud800', '../..', '/', ';', '=', '%s', '$(id)', 'a'.repeat(300), 'x'.repeat(70_000)];
      const values = [...nasty, 'eth0', 'ctr1', '/var/run/netns/pod1'];
      const confValues: unknown[] = [null, true, -1, 0, 1e21, 2147484, 0.001, 'soon', [], {}, [[[[]]]], { a: { b: [1] } }, 'x'.repeat(70_000), socket];
      const keys = ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'] as const;
      const known = new Set<number>(Object.values(CniCode).filter((c) => c !== CniCode.Internal));
      for (let i = 0; i < 40; i++) {
        const env: Record<string, string> = {};
        const key = pick(keys);
        env[key] = key === 'CNI_ARGS' ? `IgnoreUnknown=1;${pick(['K8S_POD_NAME', 'X', ''])}=${pick(values)}` : pick(values);
        const stdinConf: Record<string, unknown> = { cniVersion: pick(['0.3.1', '0.4.0', '1.0.0', '1.1.0']) };
        if (rand(2)) stdinConf[pick(['cniSocket', 'cniTimeoutSeconds', 'name', 'type', 'args', 'runtimeConfig', 'prevResult', 'ipam', 'dns'])] = pick(confValues);
        const command = pick(['ADD', 'DEL', 'CHECK']);
        const r = await shim(command, conf(stdinConf), env);
        const what = `${command} ${JSON.stringify(env).slice(0, 200)} ${JSON.stringify(stdinConf).slice(0, 200)}`;
        expect({ what, stderr: r.stderr.includes('    at ') ? r.stderr.slice(0, 300) : '' }).toEqual({ what, stderr: '' });
        if (r.code === 0) continue;
        const err = JSON.parse(r.stdout) as { code: number; msg: string; details?: string };
        expect({ what, code: known.has(err.code) || err.code >= 100, short: r.stdout.length < 600 }).toEqual({ what, code: true, short: true });
      }
    });
  });

  describe('agent unreachable', () => {
    const cases = (label: string, socketPath: () => string, extra: Record<string, unknown> = {}) => {
      it(`${label}: ADD/CHECK/GC code 11, STATUS code 50, DEL exit 0`, async () => {
        const c = (v = '1.1.0') => conf({ cniSocket: socketPath(), cniVersion: v, ...extra });
        for (const cmd of ['ADD', 'CHECK', 'GC']) {
          const r = await shim(cmd, c());
          expect(r.code).toBe(1);
          expect(JSON.parse(r.stdout)).toMatchObject({ cniVersion: '1.1.0', code: CniCode.TryAgainLater, msg: 'seine agent is not reachable', details: expect.stringContaining('is the seine agent running on this node?') });
        }
        const status = await shim('STATUS', c());
        expect([status.code, JSON.parse(status.stdout).code]).toEqual([1, CniCode.PluginNotAvailable]);
        const del = await shim('DEL', c('0.4.0'));
        expect([del.code, del.stdout]).toEqual([0, '']);
        expect(del.stderr).toContain('DEL treated as done');
      });
    };
    cases('no socket file', () => join(dir, 'missing.sock'));
    cases('stale socket file (ECONNREFUSED)', () => join(dir, 'stale.sock'));
    cases('agent accepts but never answers (timeout)', () => join(dir, 'hung.sock'), { cniTimeoutSeconds: 0.3 });
    cases('agent closes the connection without answering (crashed mid-request)', () => join(dir, 'slam.sock'));

    it('an answer that is not the protocol is code 999, also for DEL', async () => {
      for (const cmd of ['ADD', 'DEL']) {
        const r = await shim(cmd, conf({ cniSocket: join(dir, 'http400.sock') }));
        expect(r.code).toBe(1);
        expect(JSON.parse(r.stdout)).toEqual({ cniVersion: '1.0.0', code: CniCode.Internal, msg: 'seine agent rejected the request', details: 'HTTP 400: {"message":"nope"}' });
      }
      const garbage = await shim('ADD', conf({ cniSocket: join(dir, 'garbage.sock') }));
      expect(JSON.parse(garbage.stdout)).toMatchObject({ code: CniCode.Internal, msg: 'unexpected answer from seine agent' });
    });

    beforeAll(async () => {
      // A socket file nobody listens on: bound by a process that then died.
      const stale = join(dir, 'stale.sock');
      const r = await scratch.exec(process.execPath, {}, `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`);
      expect(r.signal).toBe('SIGKILL');
      // A wedged agent: accepts connections, reads, never answers.
      const fakes: Array<[string, (s: Socket) => void]> = [
        ['hung.sock', (s) => s.resume()],
        ['slam.sock', (s) => s.destroy()],
        ['http400.sock', (s) => s.once('data', () => s.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 18\r\n\r\n{"message":"nope"}'))],
        ['garbage.sock', (s) => s.once('data', () => s.end('SSH-2.0-OpenSSH\r\n\r\n'))],
      ];
      for (const [name, onConn] of fakes) {
        const srv = createNetServer(onConn);
        await new Promise<void>((r2) => srv.listen(join(dir, name), r2));
        netServers.push(srv);
      }
    });
  });

  describe('driven by the CNI runtime through a conflist', () => {
    let runtime: CniRuntime;
    beforeAll(() => {
      const binDir = join(dir, 'cnibin');
      mkdirSync(binDir);
      symlinkSync(bin, join(binDir, 'seine'));
      runtime = new CniRuntime({ cniPath: [binDir], cacheDir: join(dir, 'cache'), timeoutMs: 20_000 });
    });

    it('ADD, CHECK, DEL, GC and STATUS end to end', async () => {
      const list = parseConfList({ cniVersion: '1.1.0', name: 'seine-pods', plugins: [{ type: 'seine', cniSocket: socket }] });
      expect(await runtime.validateNetworkList(list)).toEqual([]);
      const rt = { containerId: 'e2e1', netns: '/var/run/netns/e2e1', ifname: 'eth0', args: { K8S_POD_NAMESPACE: 'prod', K8S_POD_NAME: 'upf-0', K8S_POD_INFRA_CONTAINER_ID: 'e2e1' } };
      const first = driver.requests.length;
      const result = await runtime.addNetworkList(list, rt);
      expect(result).toMatchObject({ cniVersion: '1.1.0', interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/e2e1', mtu: 1450 }], ips: [{ gateway: '10.244.1.1', interface: 0 }] });
      await runtime.checkNetworkList(list, rt);
      await runtime.statusNetworkList(list);
      await runtime.delNetworkList(list, rt);
      await runtime.addNetworkList(list, { ...rt, containerId: 'e2e2', netns: '/var/run/netns/e2e2' });
      await runtime.gcNetworkList(list, []);
      const seen = driver.requests.slice(first);
      expect(seen.map((r) => `${r.command}${'containerId' in r ? `:${r.containerId}` : ''}`)).toEqual(['ADD:e2e1', 'CHECK:e2e1', 'STATUS', 'DEL:e2e1', 'ADD:e2e2', 'DEL:e2e2', 'GC']);
      const check = seen[1] as CniRequest;
      expect(check.pod).toEqual({ namespace: 'prod', name: 'upf-0', infraContainerId: 'e2e1' });
      // The runtime's cached result came back as prevResult on CHECK and DEL.
      expect(check.prevResult).toEqual(result);
      expect((seen[3] as CniRequest).prevResult).toEqual(result);
      expect((seen[6] as GcRequest).validAttachments).toEqual([]);
      expect(await runtime.cachedAttachments()).toEqual([]);
    });

    it('an agent error reaches the runtime as the plugin error', async () => {
      const list = parseConfList({ cniVersion: '1.0.0', name: 'seine-pods', plugins: [{ type: 'seine', cniSocket: socket }] });
      driver.hook = (req) => {
        if (req.command === 'ADD') throw new Error('no pod CIDR yet');
      };
      const e = (await runtime.addNetworkList(list, { containerId: 'e2e3', netns: '/var/run/netns/e2e3', ifname: 'eth0' }).catch((x: unknown) => x)) as NetworkError;
      expect(e).toBeInstanceOf(NetworkError);
      expect(e.toCniError()).toMatchObject({ code: CniCode.Internal, msg: 'no pod CIDR yet' });
      // The runtime cleaned up with DEL, which the agent accepted.
      expect(driver.requests.at(-1)).toMatchObject({ command: 'DEL', containerId: 'e2e3' });
    });

    it('with the agent down, ADD fails with code 11 and DEL succeeds', async () => {
      const list = parseConfList({ cniVersion: '1.0.0', name: 'seine-pods', plugins: [{ type: 'seine', cniSocket: join(dir, 'missing.sock') }] });
      const rt = { containerId: 'e2e4', netns: '/var/run/netns/e2e4', ifname: 'eth0' };
      const e = (await runtime.addNetworkList(list, rt, { onFailure: 'leave' }).catch((x: unknown) => x)) as NetworkError;
      expect(e.toCniError().code).toBe(CniCode.TryAgainLater);
      await runtime.delNetworkList(list, rt);
    });
  });
});
