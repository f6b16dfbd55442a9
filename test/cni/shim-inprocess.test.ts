import { pino } from 'pino';
import { CniCode } from '../../src/cni/errors.js';
import { runShim, type ShimIo } from '../../src/cni/shim.js';
import { CniServer } from '../../src/primary/cniserver/index.js';
import { TestDriver } from '../primary/cniserver/helpers.js';
import { Scratch } from '../primary/cniserver/scratch.js';

/** runShim with in-memory stdio: the stream path for stdin, which the process tests do not take. */
describe('runShim in process', () => {
  let scratch: Scratch;
  let server: CniServer;
  let driver: TestDriver;

  beforeAll(async () => {
    scratch = await Scratch.create('shimip');
    driver = new TestDriver();
    server = new CniServer({ socketPath: scratch.path('cni.sock'), driver, log: pino({ level: 'silent' }) });
    await server.start();
  });
  afterAll(async () => {
    await server?.close();
    await scratch?.close();
  });

  async function run(env: Record<string, string>, chunks: Array<string | Buffer>): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const io: ShimIo = {
      env,
      stdin: (async function* () {
        yield* chunks;
      })(),
      stdout: { write: (c: string, cb?: () => void) => ((out += c), cb?.(), true) },
      stderr: { write: (c: string, cb?: () => void) => ((err += c), cb?.(), true) },
    };
    const code = await runShim(io);
    return { code, out, err };
  }

  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/var/run/netns/c1', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };

  it('reads stdin from a stream in pieces and forwards it', async () => {
    const conf = JSON.stringify({ cniVersion: '1.1.0', name: 'seine', type: 'seine', cniSocket: server.socketPath });
    const r = await run(env, [conf.slice(0, 10), Buffer.from(conf.slice(10))]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ cniVersion: '1.1.0', ips: [{ gateway: '10.244.1.1' }] });
    expect(driver.requests.at(-1)).toMatchObject({ command: 'ADD', containerId: 'c1' });
  });

  it('bounds stdin read from a stream', async () => {
    const r = await run(env, Array.from({ length: 20 }, () => 'x'.repeat(64 * 1024)));
    expect(r.code).toBe(1);
    expect(JSON.parse(r.out)).toMatchObject({ code: CniCode.IoFailure });
  });
});
