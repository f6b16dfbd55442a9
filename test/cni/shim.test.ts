import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseConfList } from '../../src/cni/conf.js';
import { CniCode } from '../../src/cni/errors.js';
import { CniRuntime, NetworkError } from '../../src/cni/runtime.js';
import { CniServer } from '../../src/primary/cniserver/index.js';
import type { CniRequest, GcRequest } from '../../src/primary/cniserver/types.js';
import { buildShim, notReady, TestDriver } from '../primary/cniserver/helpers.js';
import { Scratch } from '../primary/cniserver/scratch.js';
import { importGraph } from './helpers.js';

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
  const shim = (command: string | undefined, stdin = conf(), over: Record<string, string> = {}) => scratch.exec(bin, env(command, over), stdin);

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

  it('imports node built-ins and tiny local modules only', () => {
    const { files, packages } = importGraph(resolve('src/cni/shim.ts'));
    expect(packages.every((p) => p.startsWith('node:'))).toBe(true);
    expect(files.map((f) => f.replace(`${resolve('src/cni')}/`, '')).sort()).toEqual(['errors.ts', 'shim-http.ts', 'shim-protocol.ts', 'shim.ts', 'types.ts', 'version.ts']);
  });

  it('answers VERSION itself (no agent needed, stdin not read)', async () => {
    // NODE_EXTRA_CA_CERTS is dropped by the shebang: Node would warn on stderr about a missing bundle.
    const r = await scratch.exec(bin, { CNI_COMMAND: 'VERSION', NODE_EXTRA_CA_CERTS: '/nonexistent/ca.pem' });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
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
    expect(JSON.parse(relative.stdout)).toEqual({ cniVersion: '0.3.1', code: CniCode.InvalidNetworkConfig, msg: 'invalid network configuration', details: 'cniSocket: must be an absolute path (got "cni.sock")' });
    const huge = await shim('ADD', conf({ padding: 'x'.repeat(1 << 20) }));
    expect(JSON.parse(huge.stdout)).toMatchObject({ code: CniCode.IoFailure, msg: 'configuration on stdin is too large' });
    const empty = await shim('ADD', '');
    expect(JSON.parse(empty.stdout)).toMatchObject({ code: CniCode.DecodeFailure });
    const timeout = await shim('ADD', conf({ cniTimeoutSeconds: 'soon' }));
    expect(JSON.parse(timeout.stdout).details).toContain('cniTimeoutSeconds');
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
