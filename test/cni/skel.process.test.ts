import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { parseConfList } from '../../src/cni/conf.js';
import { CniCode } from '../../src/cni/errors.js';
import { CniRuntime, NetworkError } from '../../src/cni/runtime.js';
import { CommandError, run } from '../../src/host/exec.js';
import { importGraph, removeDir, tempDir, writeExecutable } from './helpers.js';

/**
 * A real plugin process built on skel, driven by the runtime: both sides of the protocol against each
 * other. Skel's sources are transpiled into a temp dir, so this does not depend on a fresh `dist/`.
 */
describe('a skel-based plugin executed by the runtime', () => {
  let dir: string;
  let runtime: CniRuntime;

  beforeAll(() => {
    dir = tempDir();
    const root = resolve('.');
    const { files } = importGraph(join(root, 'src/cni/skel.ts'));
    for (const f of files) {
      const out = join(dir, relative(root, f)).replace(/\.ts$/, '.js');
      mkdirSync(dirname(out), { recursive: true });
      const js = ts.transpileModule(readFileSync(f, 'utf8'), { compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 } });
      writeFileSync(out, js.outputText);
    }
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
    writeFileSync(
      join(dir, 'main.js'),
      `import { pluginMain } from './src/cni/skel.js';
import { CniError } from './src/cni/errors.js';
await pluginMain({
  about: 'skel test plugin',
  supportedVersions: ['0.4.0', '1.0.0', '1.1.0'],
  handlers: {
    add: (a) => ({ cniVersion: '1.1.0', interfaces: [{ name: a.ifname, sandbox: a.netns, mtu: 1400 }], ips: [{ address: '10.77.0.2/24', interface: 0 }] }),
    del: () => {},
    check: (a) => { if (a.prevResult?.ips?.[0]?.address !== '10.77.0.2/24') throw new CniError(3, 'unknown container'); },
    status: () => { if (process.env.SKEL_NOT_READY) throw new CniError(50, 'datapath not ready'); },
  },
});
`,
    );
    writeExecutable(join(dir, 'skelplug'), `#!/bin/sh\nexec ${process.execPath} ${join(dir, 'main.js')}\n`);
    runtime = new CniRuntime({ cniPath: [dir], cacheDir: join(dir, 'cache'), timeoutMs: 20_000 });
  });
  afterAll(() => removeDir(dir));

  const rt = { containerId: 'ctr1', netns: '/var/run/netns/fake', ifname: 'net1' };

  it('ADD, CHECK, DEL round trip; the result comes back in the list version', async () => {
    const l = parseConfList({ cniVersion: '0.4.0', name: 'skelnet', plugins: [{ type: 'skelplug' }] });
    const r = await runtime.addNetworkList(l, rt);
    expect(r).toEqual({ cniVersion: '0.4.0', interfaces: [{ name: 'net1', sandbox: '/var/run/netns/fake' }], ips: [{ version: '4', address: '10.77.0.2/24', interface: 0 }] });
    await runtime.checkNetworkList(l, rt);
    await runtime.delNetworkList(l, rt);
    expect(await runtime.cachedAttachments()).toEqual([]);
  });

  it('VERSION, STATUS and its error code 50 cross the process boundary', async () => {
    expect(await runtime.version('skelplug')).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
    const l = parseConfList({ cniVersion: '1.1.0', name: 'skelnet', plugins: [{ type: 'skelplug' }] });
    await runtime.statusNetworkList(l);
    const notReady = new CniRuntime({ ...runtime.opts, env: { SKEL_NOT_READY: '1' } });
    const e = (await notReady.statusNetworkList(l).catch((x: unknown) => x)) as NetworkError;
    expect(e.toCniError()).toMatchObject({ code: CniCode.PluginNotAvailable, msg: 'datapath not ready', cniVersion: '1.1.0' });
  });

  it('an unsupported version is refused with code 1 in the runtime error', async () => {
    const l = parseConfList({ cniVersion: '0.3.1', name: 'skelnet', plugins: [{ type: 'skelplug' }] });
    const e = (await runtime.addNetworkList(l, rt, { onFailure: 'leave' }).catch((x: unknown) => x)) as NetworkError;
    expect(e.toCniError().code).toBe(CniCode.IncompatibleVersion);
    expect(e.pluginError!.kind).toBe('plugin-error');
  });

  it('run by hand without env: exit 1, code 4 on stdout, the about text on stderr', async () => {
    const e = (await run(join(dir, 'skelplug'), [], { env: { PATH: process.env.PATH }, input: '{}' }).catch((x: unknown) => x)) as CommandError;
    expect(e).toBeInstanceOf(CommandError);
    expect(e.exitCode).toBe(1);
    expect(JSON.parse(e.stdout)).toEqual({ cniVersion: '1.1.0', code: CniCode.InvalidEnvironment, msg: 'required env variables [CNI_COMMAND] missing' });
    expect(e.stderr).toContain('skel test plugin');
  });
});
