import { CniCode, CniError } from '../../src/cni/errors.js';
import { dispatch, type AttachmentArgs, type GcArgs, type PluginHandlers, type PluginSpec, type SkelIo } from '../../src/cni/skel.js';
import type { CniResult, NetConf } from '../../src/cni/types.js';

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
  json: Record<string, unknown> | undefined;
}

const BASE_ENV = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'ctr1', CNI_NETNS: '/var/run/netns/p1', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin:/usr/lib/cni', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web-0' };
const CONF = { cniVersion: '1.0.0', name: 'seine', type: 'seine', mode: 'primary' };

const RESULT: CniResult = {
  cniVersion: '1.1.0',
  interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:01', mtu: 1450, sandbox: '/var/run/netns/p1' }],
  ips: [{ address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 0 }],
  routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1', mtu: 1450 }],
};

/** Handlers that record what they were given. */
function recording(over: Partial<PluginHandlers> = {}) {
  const calls: Array<{ cmd: string; args: AttachmentArgs | GcArgs | unknown }> = [];
  const handlers: PluginHandlers = {
    add: (a) => (calls.push({ cmd: 'add', args: a }), RESULT),
    del: (a) => void calls.push({ cmd: 'del', args: a }),
    check: (a) => void calls.push({ cmd: 'check', args: a }),
    gc: (a) => void calls.push({ cmd: 'gc', args: a }),
    status: (a) => void calls.push({ cmd: 'status', args: a }),
    ...over,
  };
  return { calls, handlers };
}

async function invoke(env: Record<string, string | undefined>, stdin: SkelIo['stdin'], spec: Partial<PluginSpec> = {}): Promise<Outcome> {
  let stdout = '';
  let stderr = '';
  const sink = (f: (s: string) => void) => ({
    write(chunk: string, cb?: () => void) {
      f(chunk);
      cb?.();
      return true;
    },
  });
  const code = await dispatch(
    { handlers: spec.handlers ?? recording().handlers, ...spec },
    { env, stdin, stdout: sink((s) => (stdout += s)), stderr: sink((s) => (stderr += s)) },
  );
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(stdout) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { code, stdout, stderr, json };
}

const conf = (over: Record<string, unknown> = {}) => JSON.stringify({ ...CONF, ...over });

/** An stdin that never ends: reading it would hang the test. */
const neverEnding: AsyncIterable<Buffer> = {
  [Symbol.asyncIterator]: () => ({ next: () => new Promise<IteratorResult<Buffer>>(() => undefined) }),
};

describe('skel: plugin side of CNI', () => {
  it('ADD: typed arguments reach the handler; the result is printed in the config version', async () => {
    const { calls, handlers } = recording();
    const o = await invoke(BASE_ENV, conf({ cniVersion: '0.4.0' }), { handlers });
    expect(o.code).toBe(0);
    const a = calls[0]!.args as AttachmentArgs;
    expect(a).toMatchObject({
      command: 'ADD',
      cniVersion: '0.4.0',
      containerId: 'ctr1',
      netns: '/var/run/netns/p1',
      ifname: 'eth0',
      path: ['/opt/cni/bin', '/usr/lib/cni'],
      args: 'IgnoreUnknown=1;K8S_POD_NAME=web-0',
      argPairs: [
        ['IgnoreUnknown', '1'],
        ['K8S_POD_NAME', 'web-0'],
      ],
      config: { ...CONF, cniVersion: '0.4.0' },
    });
    expect(a.prevResult).toBeUndefined();
    // Handler answered in 1.1.0; printed as 0.4.0: ips[].version added, 1.1 fields gone.
    expect(o.json).toEqual({
      cniVersion: '0.4.0',
      interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:01', sandbox: '/var/run/netns/p1' }],
      ips: [{ version: '4', address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 0 }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }],
    });
  });

  it('hands prevResult over converted to the config version', async () => {
    const { calls, handlers } = recording();
    const prev = { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.1.0.5/24' }] };
    const o = await invoke({ ...BASE_ENV, CNI_COMMAND: 'CHECK' }, conf({ prevResult: prev }), { handlers });
    expect(o).toMatchObject({ code: 0, stdout: '' });
    expect((calls[0]!.args as AttachmentArgs).prevResult).toEqual({ cniVersion: '1.0.0', ips: [{ address: '10.1.0.5/24' }] });
  });

  it('DEL may come without CNI_NETNS; DEL and CHECK print nothing', async () => {
    const { calls, handlers } = recording();
    const o = await invoke({ ...BASE_ENV, CNI_COMMAND: 'DEL', CNI_NETNS: undefined }, conf(), { handlers });
    expect(o).toMatchObject({ code: 0, stdout: '' });
    expect((calls[0]!.args as AttachmentArgs).netns).toBe('');
  });

  it('VERSION answers without reading stdin', async () => {
    const o = await invoke({ CNI_COMMAND: 'VERSION' }, neverEnding, { supportedVersions: ['0.4.0', '1.0.0', '0.3.1'] });
    expect(o.code).toBe(0);
    expect(o.json).toEqual({ cniVersion: '1.0.0', supportedVersions: ['0.4.0', '1.0.0', '0.3.1'] });
  });

  it('GC gets the valid attachments; STATUS and GC without handlers succeed', async () => {
    const { calls, handlers } = recording();
    const valid = [{ containerID: 'c1', ifname: 'eth0' }];
    const gc = await invoke({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }, conf({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': valid }), { handlers });
    expect(gc.code).toBe(0);
    expect((calls[0]!.args as GcArgs).validAttachments).toEqual(valid);
    const bare = { handlers: { add: () => RESULT, del: () => undefined, check: () => undefined } };
    expect((await invoke({ CNI_COMMAND: 'GC', CNI_PATH: '/x' }, conf({ cniVersion: '1.1.0' }), bare)).code).toBe(0);
    expect((await invoke({ CNI_COMMAND: 'STATUS', CNI_PATH: '/x' }, conf({ cniVersion: '1.1.0' }), bare)).code).toBe(0);
  });

  describe('error codes', () => {
    async function expectError(o: Promise<Outcome>, code: number, msg: RegExp, cniVersion = '1.0.0') {
      const r = await o;
      expect(r.code).toBe(1);
      expect(r.json).toMatchObject({ cniVersion, code });
      expect(String(r.json!.msg) + ' ' + String(r.json!.details ?? '')).toMatch(msg);
    }

    it('4: missing env, naming every missing variable', async () => {
      await expectError(invoke({ ...BASE_ENV, CNI_NETNS: '', CNI_PATH: undefined }, conf()), CniCode.InvalidEnvironment, /\[CNI_NETNS,CNI_PATH\] missing/, '1.1.0');
      await expectError(invoke({ ...BASE_ENV, CNI_COMMAND: 'DEL', CNI_IFNAME: undefined }, conf()), CniCode.InvalidEnvironment, /\[CNI_IFNAME\]/, '1.1.0');
      await expectError(invoke({ CNI_COMMAND: 'GC' }, conf({ cniVersion: '1.1.0' })), CniCode.InvalidEnvironment, /\[CNI_PATH\]/, '1.1.0');
    });

    it('4: missing or unknown CNI_COMMAND; the about text goes to stderr', async () => {
      const o = await invoke({}, conf(), { about: 'Seine CNI plugin v0.1.0' });
      await expectError(Promise.resolve(o), CniCode.InvalidEnvironment, /\[CNI_COMMAND\] missing/, '1.1.0');
      expect(o.stderr).toContain('Seine CNI plugin v0.1.0');
      await expectError(invoke({ ...BASE_ENV, CNI_COMMAND: 'FROB' }, conf()), CniCode.InvalidEnvironment, /unknown CNI_COMMAND: FROB/, '1.1.0');
    });

    it('4: a malformed container ID, interface name or CNI_ARGS', async () => {
      await expectError(invoke({ ...BASE_ENV, CNI_CONTAINERID: 'bad/id' }, conf()), CniCode.InvalidEnvironment, /container ID/);
      await expectError(invoke({ ...BASE_ENV, CNI_IFNAME: 'averyverylongname0' }, conf()), CniCode.InvalidEnvironment, /interface name/);
      await expectError(invoke({ ...BASE_ENV, CNI_ARGS: 'K8S_POD_NAME' }, conf()), CniCode.InvalidEnvironment, /CNI_ARGS/);
    });

    it('5: stdin too large, or unreadable', async () => {
      await expectError(invoke(BASE_ENV, conf({ pad: 'x'.repeat(2000) }), { maxStdinBytes: 1024 }), CniCode.IoFailure, /too large.*1024 bytes/, '1.1.0');
      const broken: AsyncIterable<Buffer> = {
        [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(new Error('EIO: read failed')) }),
      };
      await expectError(invoke(BASE_ENV, broken), CniCode.IoFailure, /error reading stdin.*EIO/, '1.1.0');
    });

    it('5: the bound also holds for streamed stdin', async () => {
      async function* chunks() {
        for (let i = 0; i < 10; i++) yield Buffer.alloc(200, 0x20);
      }
      await expectError(invoke(BASE_ENV, chunks(), { maxStdinBytes: 1000 }), CniCode.IoFailure, /too large/, '1.1.0');
    });

    it('6: stdin that is not JSON', async () => {
      await expectError(invoke(BASE_ENV, '{"cniVersion": "1.0.0",'), CniCode.DecodeFailure, /cannot decode network configuration/, '1.1.0');
      await expectError(invoke(BASE_ENV, ''), CniCode.DecodeFailure, /cannot decode/, '1.1.0');
    });

    it('7: an invalid config, with paths', async () => {
      await expectError(invoke(BASE_ENV, JSON.stringify({ cniVersion: '1.0.0', type: 'seine', ipam: {} })), CniCode.InvalidNetworkConfig, /ipam\.type: is required; name: is required/);
      await expectError(invoke(BASE_ENV, conf({ prevResult: { cniVersion: '1.0.0', ips: [{ address: 'nope' }] } })), CniCode.InvalidNetworkConfig, /prevResult\.ips\[0\]\.address/);
    });

    it('1: an unsupported config version, and commands the version does not have', async () => {
      await expectError(invoke(BASE_ENV, conf({ cniVersion: '0.2.0' })), CniCode.IncompatibleVersion, /incompatible CNI versions.*0\.2\.0/, '1.1.0');
      await expectError(invoke(BASE_ENV, conf({ cniVersion: '1.1.0' }), { supportedVersions: ['0.4.0', '1.0.0'] }), CniCode.IncompatibleVersion, /incompatible/);
      await expectError(invoke({ ...BASE_ENV, CNI_COMMAND: 'CHECK' }, conf({ cniVersion: '0.3.1' })), CniCode.IncompatibleVersion, /does not allow CHECK/, '0.3.1');
      await expectError(invoke({ CNI_COMMAND: 'GC', CNI_PATH: '/x' }, conf()), CniCode.IncompatibleVersion, /does not allow GC/);
      await expectError(invoke({ CNI_COMMAND: 'STATUS', CNI_PATH: '/x' }, conf()), CniCode.IncompatibleVersion, /does not allow STATUS/);
      await expectError(invoke(BASE_ENV, conf({ prevResult: { cniVersion: '0.2.0' } })), CniCode.IncompatibleVersion, /0\.2\.0/);
    });

    it('2, 3, 11, 50, 51 and plugin codes: thrown CniErrors are printed as they are', async () => {
      for (const code of [CniCode.UnsupportedField, CniCode.UnknownContainer, CniCode.TryAgainLater, 101]) {
        const handlers = recording({
          add: () => {
            throw new CniError(code, `refused with ${code}`, 'because');
          },
        }).handlers;
        const o = await invoke(BASE_ENV, conf(), { handlers });
        expect(o.code).toBe(1);
        expect(o.json).toEqual({ cniVersion: '1.0.0', code, msg: `refused with ${code}`, details: 'because' });
      }
      for (const code of [CniCode.PluginNotAvailable, CniCode.PluginNotAvailableLimited]) {
        const handlers = recording({
          status: () => {
            throw new CniError(code, 'datapath not ready');
          },
        }).handlers;
        const o = await invoke({ CNI_COMMAND: 'STATUS', CNI_PATH: '/x' }, conf({ cniVersion: '1.1.0' }), { handlers });
        expect(o.json).toEqual({ cniVersion: '1.1.0', code, msg: 'datapath not ready' });
      }
    });

    it('2: plugin-specific config checks through parseConfig', async () => {
      const parseConfig = (c: NetConf) => {
        if (c.mode !== 'secondary') throw new CniError(CniCode.UnsupportedField, 'unsupported field', `mode "${String(c.mode)}"`);
        return c;
      };
      await expectError(invoke(BASE_ENV, conf(), { parseConfig }), CniCode.UnsupportedField, /mode "primary"/);
    });

    it('999: a plain error from a handler, with its stack on stderr', async () => {
      const handlers = recording({
        del: () => {
          throw new TypeError('cannot read properties of undefined');
        },
      }).handlers;
      const o = await invoke({ ...BASE_ENV, CNI_COMMAND: 'DEL' }, conf(), { handlers });
      await expectError(Promise.resolve(o), CniCode.Internal, /cannot read properties/);
      expect(o.stderr).toMatch(/TypeError: cannot read properties/);
    });

    it('999: an ADD result that is not a valid result', async () => {
      const handlers = recording({ add: () => ({ cniVersion: '1.0.0', ips: [{ address: '10.1.0.5' }] }) }).handlers;
      await expectError(invoke(BASE_ENV, conf(), { handlers }), CniCode.Internal, /invalid result.*ips\[0\]\.address/);
    });
  });
});
