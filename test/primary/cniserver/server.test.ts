import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { CniCode, CniError } from '../../../src/cni/errors.js';
import { MAX_REQUEST_BODY_BYTES, MAX_STDIN_BYTES, type CniInvocation } from '../../../src/cni/shim-protocol.js';
import { CniServer } from '../../../src/primary/cniserver/index.js';
import type { CniRequest, GcRequest } from '../../../src/primary/cniserver/types.js';
import { httpOnSocket, invoke } from './client.js';
import { deferred, notReady, sleep, TestDriver } from './helpers.js';
import { Scratch } from './scratch.js';

const ENV = {
  CNI_CONTAINERID: 'ctr1',
  CNI_NETNS: '/var/run/netns/pod1',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=ctr1;K8S_POD_UID=uid-1',
};

const conf = (over: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: '1.1.0', name: 'seine', type: 'seine', ...over });

const inv = (command: string, over: { env?: Record<string, string | undefined>; conf?: Record<string, unknown>; stdin?: string } = {}): CniInvocation => ({
  command,
  env: Object.fromEntries(Object.entries({ ...ENV, ...over.env }).filter(([, v]) => v !== undefined)) as CniInvocation['env'],
  stdin: over.stdin ?? conf(over.conf),
});

describe('CniServer over a unix socket', () => {
  let scratch: Scratch;
  let dir: string;
  let driver: TestDriver;
  let server: CniServer;
  let socket: string;
  let logs: Array<Record<string, unknown>>;
  const extra: CniServer[] = [];

  const startServer = async (opts: { requestTimeoutMs?: number; socketPath?: string } = {}) => {
    const s = new CniServer({
      socketPath: opts.socketPath ?? socket,
      driver,
      requestTimeoutMs: opts.requestTimeoutMs ?? 10_000,
      log: pino({ level: 'info' }, { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) }),
    });
    await s.start();
    return s;
  };

  beforeEach(async () => {
    scratch = await Scratch.create('cnisrv');
    dir = scratch.dir;
    socket = join(dir, 'run', 'cni.sock');
    driver = new TestDriver();
    logs = [];
    server = await startServer();
  });
  afterEach(async () => {
    await server?.close();
    for (const s of extra.splice(0)) await s.close();
    await scratch.close();
  });

  describe('the socket', () => {
    it('is created with mode 0600, and removed on close', async () => {
      expect(statSync(socket).isSocket()).toBe(true);
      expect(statSync(socket).mode & 0o777).toBe(0o600);
      await server.close();
      expect(existsSync(socket)).toBe(false);
    });

    it('replaces a stale socket file left by a dead agent', async () => {
      await server.close();
      const stale = join(dir, 'stale.sock');
      // A process that binds the socket and dies without unlinking it.
      const r = await scratch.exec(process.execPath, {}, `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`);
      expect(r.signal).toBe('SIGKILL');
      expect(statSync(stale).isSocket()).toBe(true);
      const s = await startServer({ socketPath: stale });
      extra.push(s);
      expect((await invoke(stale, inv('VERSION'))).result).toMatchObject({ cniVersion: '1.1.0' });
      expect(logs.some((l) => l.msg === 'removing stale CNI socket')).toBe(true);
    });

    it('refuses a socket another server answers on, and a path that is not a socket', async () => {
      await expect(startServer()).rejects.toThrow(/is in use/);
      const file = join(dir, 'plain');
      writeFileSync(file, '');
      await expect(startServer({ socketPath: file })).rejects.toThrow(/not a socket/);
      // The live server is untouched.
      expect((await invoke(socket, inv('VERSION'))).result).toBeDefined();
    });

    it('answers malformed HTTP with transport errors', async () => {
      expect((await httpOnSocket(socket, { method: 'GET' })).status).toBe(405);
      expect((await httpOnSocket(socket, { path: '/v2/cni', body: '{}' })).status).toBe(404);
      expect(await httpOnSocket(socket, { body: 'not json' })).toMatchObject({ status: 400, body: expect.stringContaining('body is not JSON') });
      expect(await httpOnSocket(socket, { body: JSON.stringify({ command: 'ADD', env: {} }) })).toMatchObject({ status: 400, body: expect.stringContaining('stdin: must be a string') });
      expect((await httpOnSocket(socket, { body: JSON.stringify({ command: 'ADD', env: { CNI_NETNS: 5 }, stdin: '' }) })).status).toBe(400);
      // Larger than any shim sends: stdin and env at their limits, every byte escaped to six.
      expect((await httpOnSocket(socket, { body: JSON.stringify({ command: 'ADD', env: {}, stdin: 'x'.repeat(MAX_REQUEST_BODY_BYTES) }) })).status).toBe(413);
      expect(driver.requests).toHaveLength(0);
    });
  });

  describe('decoding', () => {
    it('ADD: passes a typed request to the driver and returns its result', async () => {
      const reply = await invoke(socket, inv('ADD', { conf: { runtimeConfig: { portMappings: [{ hostPort: 80 }] }, mtu: 1400 } }));
      expect(reply.error).toBeUndefined();
      expect(reply.result).toMatchObject({ cniVersion: '1.1.0', ips: [{ address: '10.244.1.2/24' }] });
      const req = driver.requests[0] as CniRequest;
      expect(req).toMatchObject({
        command: 'ADD',
        cniVersion: '1.1.0',
        containerId: 'ctr1',
        netns: '/var/run/netns/pod1',
        ifname: 'eth0',
        pod: { namespace: 'default', name: 'web-0', infraContainerId: 'ctr1', uid: 'uid-1' },
        cniPath: ['/opt/cni/bin'],
        capabilityArgs: { portMappings: [{ hostPort: 80 }] },
        config: { name: 'seine', type: 'seine', mtu: 1400 },
      });
      expect(req.argPairs[0]).toEqual(['IgnoreUnknown', '1']);
      expect(req.signal.aborted).toBe(false);
    });

    it.each([
      ['unknown command', inv('FROB'), CniCode.InvalidEnvironment, 'unknown CNI_COMMAND: FROB', '1.1.0'],
      ['empty command', inv(''), CniCode.InvalidEnvironment, 'required env variables [CNI_COMMAND] missing', '1.1.0'],
      ['ADD without CNI_NETNS', inv('ADD', { env: { CNI_NETNS: undefined } }), CniCode.InvalidEnvironment, 'required env variables [CNI_NETNS] missing', '1.1.0'],
      ['GC without CNI_PATH', inv('GC', { env: { CNI_PATH: undefined } }), CniCode.InvalidEnvironment, 'required env variables [CNI_PATH] missing', '1.1.0'],
      ['bad container id', inv('ADD', { env: { CNI_CONTAINERID: 'a/b' }, conf: { cniVersion: '0.4.0' } }), CniCode.InvalidEnvironment, 'invalid characters in container ID', '0.4.0'],
      ['bad ifname', inv('DEL', { env: { CNI_IFNAME: 'a-very-long-interface' } }), CniCode.InvalidEnvironment, 'invalid interface name', '1.1.0'],
      ['malformed CNI_ARGS', inv('ADD', { env: { CNI_ARGS: 'K8S_POD_NAME' } }), CniCode.InvalidEnvironment, 'invalid CNI_ARGS pair', '1.1.0'],
      ['unknown CNI_ARGS key', inv('ADD', { env: { CNI_ARGS: 'K8S_POD_NAMESPACE=a;K8S_POD_NAME=b;FOO=1' } }), CniCode.InvalidEnvironment, 'unknown CNI_ARGS keys', '1.1.0'],
      ['ifname of 8 characters but 16 bytes', inv('ADD', { env: { CNI_IFNAME: 'éééééééé' } }), CniCode.InvalidEnvironment, 'invalid interface name', '1.1.0'],
      ['ifname with a newline', inv('ADD', { env: { CNI_IFNAME: 'eth\n0' } }), CniCode.InvalidEnvironment, 'invalid interface name', '1.1.0'],
      ['netns with a newline', inv('ADD', { env: { CNI_NETNS: '/var/run/netns/pod1\nlink del eth0' } }), CniCode.InvalidEnvironment, 'invalid network namespace path', '1.1.0'],
      ['relative netns', inv('DEL', { env: { CNI_NETNS: 'pod1' } }), CniCode.InvalidEnvironment, 'invalid network namespace path', '1.1.0'],
      ['CNI_ARGS value with a control character', inv('ADD', { env: { CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=a;K8S_POD_NAME=b\r' } }), CniCode.InvalidEnvironment, 'invalid CNI_ARGS pair', '1.1.0'],
      ['CNI_ARGS longer than an environment string can be', inv('ADD', { env: { CNI_ARGS: `IgnoreUnknown=1;X=${'x'.repeat(128 * 1024)}` } }), CniCode.InvalidEnvironment, 'CNI_ARGS is too long', '1.1.0'],
      ['stdin over the limit', inv('ADD', { conf: { padding: 'x'.repeat(MAX_STDIN_BYTES) } }), CniCode.IoFailure, 'configuration on stdin is too large', '1.1.0'],
      ['stdin nested too deeply', inv('ADD', { stdin: `{"cniVersion":"1.0.0","name":"seine","type":"seine","cniSocket":${'['.repeat(100_000)}${']'.repeat(100_000)}}` }), CniCode.DecodeFailure, 'cannot decode network configuration from stdin', '1.0.0'],
      ['cniTimeoutSeconds too large for a timer', inv('DEL', { conf: { cniTimeoutSeconds: 2147484 } }), CniCode.InvalidNetworkConfig, 'invalid network configuration', '1.1.0'],
      ['cniSocket not a path', inv('ADD', { conf: { cniSocket: { nested: [[[1]]] } } }), CniCode.InvalidNetworkConfig, 'invalid network configuration', '1.1.0'],
      [
        'ADD after another plugin (prevResult)',
        inv('ADD', { conf: { cniVersion: '1.0.0', prevResult: { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/pod1' }], ips: [{ address: '10.1.0.5/24', interface: 0 }] } } }),
        CniCode.UnsupportedField,
        'prevResult from another plugin is not supported in this mode',
        '1.0.0',
      ],
      ['stdin not JSON', inv('ADD', { stdin: '{"cniVersion": "0.4.0",' }), CniCode.DecodeFailure, 'cannot decode network configuration from stdin', '1.1.0'],
      ['invalid config', inv('ADD', { conf: { cniVersion: '1.0.0', name: 'bad name!' } }), CniCode.InvalidNetworkConfig, 'invalid network configuration', '1.0.0'],
      ['invalid prevResult', inv('DEL', { conf: { prevResult: { cniVersion: '1.1.0', ips: [{ address: '10.0.0.300/24' }] } } }), CniCode.InvalidNetworkConfig, 'invalid network configuration', '1.1.0'],
      ['unsupported version', inv('ADD', { conf: { cniVersion: '0.2.0' } }), CniCode.IncompatibleVersion, 'incompatible CNI versions', '1.1.0'],
      ['unknown version', inv('ADD', { conf: { cniVersion: '2.0.0' } }), CniCode.IncompatibleVersion, 'incompatible CNI versions', '1.1.0'],
      ['CHECK before 0.4.0', inv('CHECK', { conf: { cniVersion: '0.3.1' } }), CniCode.IncompatibleVersion, 'config version does not allow CHECK', '0.3.1'],
      ['GC before 1.1.0', inv('GC', { conf: { cniVersion: '1.0.0' } }), CniCode.IncompatibleVersion, 'config version does not allow GC', '1.0.0'],
    ])('%s -> code %i', async (_name, invocation, code, msg, version) => {
      const reply = await invoke(socket, invocation);
      expect(reply.result).toBeUndefined();
      expect(reply.error).toMatchObject({ code, msg, cniVersion: version });
      expect(driver.requests).toHaveLength(0);
      const log = logs.find((l) => l.msg === 'CNI request failed');
      expect(log).toMatchObject({ command: invocation.command, outcome: 'error', code });
    });

    it('DEL without CNI_NETNS is fine (the namespace may be gone)', async () => {
      expect(await invoke(socket, inv('DEL', { env: { CNI_NETNS: undefined } }))).toEqual({});
      expect((driver.requests[0] as CniRequest).netns).toBe('');
    });

    it('no pod args: the request has no pod; unknown keys pass with IgnoreUnknown=true', async () => {
      await invoke(socket, inv('ADD', { env: { CNI_ARGS: '' } }));
      expect((driver.requests[0] as CniRequest).pod).toBeUndefined();
      await invoke(socket, inv('ADD', { env: { CNI_ARGS: 'IgnoreUnknown=true;FOO=1;K8S_POD_NAMESPACE=a;K8S_POD_NAME=b' } }));
      expect((driver.requests[1] as CniRequest).pod).toEqual({ namespace: 'a', name: 'b' });
    });

    it('a container that is not a Kubernetes pod (podman passes K8S_POD_NAME only) is served without a pod', async () => {
      for (const args of ['IgnoreUnknown=1;K8S_POD_NAME=web', 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default']) {
        const reply = await invoke(socket, inv('ADD', { env: { CNI_ARGS: args } }));
        expect(reply.error).toBeUndefined();
        expect(reply.result).toMatchObject({ ips: [{ address: expect.any(String) }] });
        expect((driver.requests.at(-1) as CniRequest).pod).toBeUndefined();
      }
      expect(await invoke(socket, inv('DEL', { env: { CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web' } }))).toEqual({});
    });

    it('a prevResult on DEL and CHECK (the cached ADD result) is passed on, not refused', async () => {
      const prevResult = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0' }], ips: [{ address: '10.244.1.9/24', interface: 0 }] };
      expect(await invoke(socket, inv('DEL', { conf: { cniVersion: '1.0.0', prevResult } }))).toEqual({});
      expect(await invoke(socket, inv('CHECK', { conf: { cniVersion: '1.0.0', prevResult } }))).toEqual({});
      expect(driver.requests.map((r) => (r as CniRequest).prevResult)).toEqual([prevResult, prevResult]);
    });

    it('a configuration of almost 1 MiB that JSON escaping doubles is served', async () => {
      const stdin = conf().replace('{', `{${'\n'.repeat(MAX_STDIN_BYTES - 200)}`);
      expect(Buffer.byteLength(stdin)).toBeLessThanOrEqual(MAX_STDIN_BYTES);
      expect(Buffer.byteLength(JSON.stringify(stdin))).toBeGreaterThan(2 * MAX_STDIN_BYTES - 1000);
      expect((await invoke(socket, inv('ADD', { stdin }))).result).toBeDefined();
    });

    it('VERSION is answered without the driver', async () => {
      expect(await invoke(socket, inv('VERSION', { stdin: '' }))).toEqual({ result: { cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] } });
    });

    it('GC gets the valid attachments; STATUS reaches the driver', async () => {
      const attachments = [{ containerID: 'ctr1', ifname: 'eth0' }];
      expect(await invoke(socket, inv('GC', { conf: { 'cni.dev/valid-attachments': attachments } }))).toEqual({});
      expect((driver.requests[0] as GcRequest).validAttachments).toEqual(attachments);
      expect(await invoke(socket, inv('STATUS'))).toEqual({});
      expect(driver.requests[1]!.command).toBe('STATUS');
    });
  });

  describe('driver errors', () => {
    it('a CniError is passed through in the request version', async () => {
      driver.hook = () => {
        throw notReady();
      };
      expect((await invoke(socket, inv('STATUS'))).error).toEqual({ cniVersion: '1.1.0', code: CniCode.PluginNotAvailable, msg: 'datapath not ready', details: 'bridge br-int missing' });
      driver.hook = () => {
        throw new CniError(117, 'no such pod interface', 'eth0', { cniVersion: '0.3.0' });
      };
      expect((await invoke(socket, inv('CHECK', { conf: { cniVersion: '0.4.0' } }))).error).toEqual({ cniVersion: '0.4.0', code: 117, msg: 'no such pod interface', details: 'eth0' });
    });

    it('anything else is code 999 with its message', async () => {
      driver.hook = () => {
        throw new Error('ovsdb transaction failed: timeout');
      };
      expect((await invoke(socket, inv('ADD'))).error).toEqual({ cniVersion: '1.1.0', code: CniCode.Internal, msg: 'ovsdb transaction failed: timeout' });
      driver.hook = () => Promise.reject('a string');
      expect((await invoke(socket, inv('DEL'))).error).toMatchObject({ code: 999, msg: 'a string' });
    });

    it('an invalid driver result is code 999', async () => {
      driver.hook = () => ({ cniVersion: '1.1.0', ips: [{ address: 'nonsense' }] });
      expect((await invoke(socket, inv('ADD'))).error).toMatchObject({ code: CniCode.Internal, msg: 'seine agent produced an invalid result', details: expect.stringContaining('ips[0].address') });
    });
  });

  describe('version conversion', () => {
    it.each([
      ['0.3.1', { cniVersion: '0.3.1', interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/pod1', mac: '02:00:00:00:00:01' }], ips: [{ version: '4', address: '10.244.1.2/24', gateway: '10.244.1.1', interface: 0 }], routes: [{ dst: '0.0.0.0/0', gw: '10.244.1.1' }] }],
      ['1.0.0', { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/pod1', mac: '02:00:00:00:00:01' }], ips: [{ address: '10.244.1.2/24', gateway: '10.244.1.1', interface: 0 }], routes: [{ dst: '0.0.0.0/0', gw: '10.244.1.1' }] }],
      ['1.1.0', { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/pod1', mac: '02:00:00:00:00:01', mtu: 1450 }], ips: [{ address: '10.244.1.2/24', gateway: '10.244.1.1', interface: 0 }], routes: [{ dst: '0.0.0.0/0', gw: '10.244.1.1', mtu: 1450 }] }],
    ])('the 1.1.0 driver result is returned in the config version %s', async (version, expected) => {
      expect((await invoke(socket, inv('ADD', { conf: { cniVersion: version } }))).result).toEqual(expected);
    });

    it('a driver result in an old version is converted up; prevResult reaches the driver in the config version', async () => {
      driver.hook = () => ({ cniVersion: '0.3.0', ips: [{ version: '4', address: '10.244.1.9/24' }] });
      expect((await invoke(socket, inv('ADD', { conf: { cniVersion: '1.0.0' } }))).result).toEqual({ cniVersion: '1.0.0', ips: [{ address: '10.244.1.9/24' }] });
      const prevResult = { cniVersion: '0.4.0', interfaces: [{ name: 'eth0' }], ips: [{ version: '4', address: '10.244.1.9/24', interface: 0 }] };
      expect(await invoke(socket, inv('CHECK', { conf: { cniVersion: '1.0.0', prevResult } }))).toEqual({});
      expect((driver.requests[1] as CniRequest).prevResult).toEqual({ cniVersion: '1.0.0', interfaces: [{ name: 'eth0' }], ips: [{ address: '10.244.1.9/24', interface: 0 }] });
    });
  });

  describe('ordering', () => {
    it('two ADDs for one container never overlap; different containers run in parallel', async () => {
      const gate = deferred();
      driver.hook = async (req) => {
        if ('containerId' in req && req.containerId === 'ctr1') await gate.promise;
      };
      const a1 = invoke(socket, inv('ADD'));
      const a2 = invoke(socket, inv('ADD'));
      await sleep(150);
      expect(driver.events.filter((e) => e.at === 'start')).toHaveLength(1);
      // Another container is not held up by ctr1.
      expect((await invoke(socket, inv('ADD', { env: { CNI_CONTAINERID: 'ctr2' } }))).result).toBeDefined();
      expect(driver.events.filter((e) => e.containerId === 'ctr1' && e.at === 'end')).toHaveLength(0);
      gate.resolve();
      const [r1, r2] = await Promise.all([a1, a2]);
      expect(r1.result).toBeDefined();
      expect(r2.result).toBeDefined();
      expect(driver.overlapped('ctr1')).toBe(false);
      expect(driver.events.filter((e) => e.containerId === 'ctr1').map((e) => e.at)).toEqual(['start', 'end', 'start', 'end']);
    });

    it('ADD, DEL and CHECK of one container run in arrival order, one at a time', async () => {
      driver.hook = async () => {
        await sleep(20);
      };
      const cmds = ['ADD', 'CHECK', 'DEL', 'ADD', 'DEL'];
      const replies = await Promise.all(cmds.map(async (c, i) => {
        await sleep(i * 5);
        return invoke(socket, inv(c));
      }));
      expect(replies.every((r) => !r.error)).toBe(true);
      expect(driver.overlapped('ctr1')).toBe(false);
      expect(driver.events.filter((e) => e.at === 'start').map((e) => e.command)).toEqual(cmds);
    });

    it('GC waits for attachment calls in flight, and later ones wait for GC', async () => {
      const gate = deferred();
      driver.hook = async (req) => {
        if (req.command === 'ADD' && req.containerId === 'ctr1') await gate.promise;
      };
      const add1 = invoke(socket, inv('ADD'));
      await sleep(50);
      const gc = invoke(socket, inv('GC', { conf: { 'cni.dev/valid-attachments': [] } }));
      await sleep(50);
      const add2 = invoke(socket, inv('ADD', { env: { CNI_CONTAINERID: 'ctr2' } }));
      await sleep(100);
      expect(driver.events.map((e) => `${e.at}:${e.command}`)).toEqual(['start:ADD']);
      gate.resolve();
      await Promise.all([add1, gc, add2]);
      expect(driver.events.map((e) => `${e.at}:${e.command}:${e.containerId ?? ''}`)).toEqual(['start:ADD:ctr1', 'end:ADD:ctr1', 'start:GC:', 'end:GC:', 'start:ADD:ctr2', 'end:ADD:ctr2']);
    });
  });

  describe('timeout', () => {
    it('a hung driver call is answered with code 11; a call queued behind it never starts', async () => {
      await server.close();
      server = await startServer({ requestTimeoutMs: 300 });
      const hang = deferred();
      let aborted: unknown;
      driver.hook = async (req) => {
        req.signal.addEventListener('abort', () => (aborted = req.signal.reason));
        await hang.promise;
      };
      // Both answer (the test would time out otherwise), each with the agent's own timeout error.
      const [first, second] = await Promise.all([invoke(socket, inv('ADD')), invoke(socket, inv('DEL'))]);
      expect(first.error).toEqual({ cniVersion: '1.1.0', code: CniCode.TryAgainLater, msg: 'seine agent timed out on ADD', details: 'container ctr1 eth0: no answer within 300 ms' });
      expect(second.error).toMatchObject({ code: CniCode.TryAgainLater, msg: 'seine agent timed out on DEL' });
      expect(aborted).toBeInstanceOf(CniError);
      // The hung ADD still holds the container: the DEL did not start in parallel, and never will.
      expect(driver.events.map((e) => `${e.at}:${e.command}`)).toEqual(['start:ADD']);
      hang.resolve();
      await sleep(50);
      expect(driver.events.map((e) => `${e.at}:${e.command}`)).toEqual(['start:ADD', 'end:ADD']);
      expect(logs.some((l) => l.msg === 'timed-out CNI request finished late' && l.command === 'ADD')).toBe(true);
      expect(logs.some((l) => l.msg === 'timed-out CNI request dropped before it started' && l.command === 'DEL')).toBe(true);
      // The container is usable again.
      driver.hook = undefined;
      expect((await invoke(socket, inv('DEL'))).error).toBeUndefined();
    });
  });

  it('a GC stuck behind a hung call times out and stops holding up other containers', async () => {
    await server.close();
    server = await startServer({ requestTimeoutMs: 400 });
    const hang = deferred();
    driver.hook = async (req) => {
      if (req.command === 'ADD' && req.containerId === 'ctr1') await hang.promise;
    };
    const add1 = invoke(socket, inv('ADD'));
    await sleep(20);
    const gc = invoke(socket, inv('GC'));
    // Well before the GC times out, and with time to spare after it does.
    await sleep(200);
    const add2 = invoke(socket, inv('ADD', { env: { CNI_CONTAINERID: 'ctr2' } }));
    expect((await gc).error).toMatchObject({ code: CniCode.TryAgainLater, msg: 'seine agent timed out on GC' });
    // Withdrawn before it started: ctr2 went ahead instead of waiting for the hung ctr1.
    expect((await add2).result).toBeDefined();
    expect((await add1).error).toMatchObject({ code: CniCode.TryAgainLater });
    expect(driver.events.some((e) => e.command === 'GC')).toBe(false);
    hang.resolve();
  });

  it('logs each request with command, container, pod, duration and outcome', async () => {
    await invoke(socket, inv('ADD'));
    const log = logs.find((l) => l.msg === 'CNI request');
    expect(log).toMatchObject({ level: 30, command: 'ADD', containerId: 'ctr1', ifname: 'eth0', pod: 'default/web-0', cniVersion: '1.1.0', outcome: 'ok' });
    expect(typeof log!.durationMs).toBe('number');
  });
});
