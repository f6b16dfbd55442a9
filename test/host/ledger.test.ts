import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ResourceLedger, isAlive, processRef, reapStaleLedgers } from '../../src/host/ledger.js';
import { netnsExists } from '../../src/host/netns.js';
import { TEST_LEDGER_ROOT } from '../harness/sandbox.js';

// The child runs the built code (npm test builds first): it records a netns and a live OVS, then dies
// by SIGKILL without any cleanup, as a crashed test run would.
const CHILD = `
const { ResourceLedger } = await import(process.env.DIST + '/src/host/ledger.js');
const { createNetns } = await import(process.env.DIST + '/src/host/netns.js');
const { OvsDaemons } = await import(process.env.DIST + '/src/ovs/daemons.js');
const ledger = ResourceLedger.create(process.env.LEDGER_DIR);
const ns = process.env.NS;
ledger.netns(ns);
const path = await createNetns(ns);
const ovs = new OvsDaemons({ rundir: process.env.LEDGER_DIR + '/ovs', netns: path, ledger });
await ovs.start();
process.stdout.write('ready\\n');
setInterval(() => {}, 1000);
`;

describe('resource ledger', () => {
  it('a later run reaps exactly what a killed run recorded', async () => {
    const id = `crash${process.pid}`;
    const dir = join(TEST_LEDGER_ROOT, id);
    const ns = `${id}-ns`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
      env: { ...process.env, DIST: join(process.cwd(), 'dist'), LEDGER_DIR: dir, NS: ns },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (b: Buffer) => b.toString().includes('ready') && resolve());
        child.on('exit', (code) => reject(new Error(`child exited early (${code})`)));
      });
      const recorded = ResourceLedger.load(dir);
      expect(recorded?.ownerAlive).toBe(true);
      // A live owner's ledger is never reaped.
      await reapStaleLedgers(TEST_LEDGER_ROOT);
      expect(netnsExists(ns)).toBe(true);

      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const ovsPid = Number(readFileSync(join(dir, 'ovs', 'ovs-vswitchd.pid'), 'utf8'));
      const vswitchd = processRef(ovsPid, 'ovs-vswitchd');
      expect(isAlive(vswitchd)).toBe(true);

      expect(await reapStaleLedgers(TEST_LEDGER_ROOT)).toBeGreaterThanOrEqual(1);
      expect(netnsExists(ns)).toBe(false);
      expect(isAlive(vswitchd)).toBe(false);
      expect(existsSync(dir)).toBe(false);
    } finally {
      child.kill('SIGKILL');
      await ResourceLedger.load(dir)?.release();
    }
  });
});
