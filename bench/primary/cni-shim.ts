/**
 * Start-up cost of the seine-cni plugin, measured as wall time from spawn to exit (what a container
 * runtime pays per pod network event), against the reference bridge plugin in the same run:
 *   1. bridge VERSION                   (baseline: the reference plugin's process floor)
 *   2. seine-cni VERSION                (answered by the plugin itself)
 *   3. seine-cni ADD                    (forwarded to a CNI server with a trivial driver)
 *   4. node -e ''                       (for scale: what any Node.js process costs here)
 * Runs after the build (`npm run build`): node dist/bench/primary/cni-shim.js [rounds]
 * The temp dir and socket it creates are removed on exit, failure and SIGINT/SIGTERM.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { SEINE_CNI_BINARY } from '../../src/cni/plugin-binary.js';
import { SYSTEM_CNI_BIN } from '../../src/lab/pod-network.js';
import { CniServer, type CniDriver } from '../../src/primary/cniserver/index.js';

const ROUNDS = Number(process.argv[2] ?? 40);
const BIN = SEINE_CNI_BINARY;
const BASELINE = 'bridge VERSION';

const driver: CniDriver = {
  add: async (req) => ({ cniVersion: '1.1.0', interfaces: [{ name: req.ifname, sandbox: req.netns }], ips: [{ address: '10.244.1.2/24', gateway: '10.244.1.1', interface: 0 }] }),
  del: async () => undefined,
  check: async () => undefined,
  gc: async () => undefined,
  status: async () => undefined,
};

function timeRun(cmd: string, args: string[], env: NodeJS.ProcessEnv, input: string): Promise<number> {
  return new Promise((res, rej) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', rej);
    child.on('exit', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code !== 0) rej(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${out}`));
      else res(ms);
    });
    child.stdin.end(input);
  });
}

/** Low quantiles matter most: on a shared machine the upper ones mostly measure the neighbours. */
function stats(xs: number[]): { min: number; p10: number; p50: number; p90: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { min: s[0]!, p10: q(0.1), p50: q(0.5), p90: q(0.9) };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'seine-bench-shim-'));
  const server = new CniServer({ socketPath: join(dir, 'cni.sock'), driver, log: pino({ level: 'silent' }) });
  const cleanup = async () => {
    await server.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => void cleanup().then(() => process.exit(130)));
  }
  try {
    await server.start();
    const base = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
    const cniEnv = { ...base, CNI_CONTAINERID: 'bench', CNI_NETNS: '/var/run/netns/bench', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=bench' };
    const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'seine', type: 'seine', cniSocket: server.socketPath });
    const cases: Array<[string, () => Promise<number>]> = [
      [BASELINE, () => timeRun(join(SYSTEM_CNI_BIN, 'bridge'), [], { ...base, CNI_COMMAND: 'VERSION' }, '')],
      ['seine-cni VERSION', () => timeRun(BIN, [], { ...base, CNI_COMMAND: 'VERSION' }, '')],
      ['seine-cni ADD (forwarded)', () => timeRun(BIN, [], { ...cniEnv, CNI_COMMAND: 'ADD' }, conf)],
      ["node -e ''", () => timeRun(process.execPath, ['-e', ''], base, '')],
    ];
    const samples = new Map<string, number[]>(cases.map(([n]) => [n, []]));
    for (const [, run] of cases) await run(); // warm the page cache
    // Interleaved, so that load changes on the machine hit every case alike.
    for (let i = 0; i < ROUNDS; i++) for (const [name, run] of cases) samples.get(name)!.push(await run());
    const baseline = stats(samples.get(BASELINE)!);
    const cpu = cpus();
    const plus = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(1)}`;
    console.log(`seine-cni start-up (spawn to exit), ${ROUNDS} rounds; ${cpu[0]?.model ?? 'cpu'} × ${cpu.length}; node ${process.version}`);
    console.log(`case                          min ms   p10 ms   p50 ms   p90 ms   over ${BASELINE} (p10 / p50)   ratio (p50)`);
    for (const [name, xs] of samples) {
      const s = stats(xs);
      const cols = [s.min, s.p10, s.p50, s.p90].map((x) => x.toFixed(1).padStart(8)).join(' ');
      console.log(`${name.padEnd(28)}${cols}   ${`${plus(s.p10 - baseline.p10)} / ${plus(s.p50 - baseline.p50)}`.padEnd(34)}${(s.p50 / baseline.p50).toFixed(2)}x`);
    }
  } finally {
    await cleanup();
  }
}

await main();
