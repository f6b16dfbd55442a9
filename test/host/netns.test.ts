import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { run } from '../../src/host/exec.js';
import { createNetns, deleteNetns, netnsExists, netnsPath, pidsInNetns } from '../../src/host/netns.js';

describe('network namespaces', () => {
  const name = `seine-t-${randomBytes(3).toString('hex')}`;
  afterAll(async () => {
    await deleteNetns(name);
  });

  it('made with loopback up; its processes found as ip netns pids finds them, and ended when it is deleted', async () => {
    await createNetns(name);
    const lo = JSON.parse((await run('ip', ['-n', name, '-j', 'link', 'show', 'lo'])).stdout) as Array<{ flags: string[] }>;
    expect(lo[0]!.flags).toContain('UP');
    const sleeper = spawn('ip', ['netns', 'exec', name, 'sleep', '300'], { stdio: 'ignore' });
    const exited = new Promise((r) => sleeper.once('exit', r));
    const listed = async (): Promise<number[]> => (await run('ip', ['netns', 'pids', name])).stdout.split('\n').filter(Boolean).map(Number).sort();
    // `ip netns exec` becomes sleep: wait until the process is in the namespace.
    for (let i = 0; i < 100 && !(await listed()).length; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await listed()).length).toBe(1);
    expect((await pidsInNetns(netnsPath(name))).sort()).toEqual(await listed());
    // The machine's own namespace is not this one.
    expect(await pidsInNetns(netnsPath(name))).not.toContain(process.pid);
    await deleteNetns(name);
    await exited;
    expect(netnsExists(name)).toBe(false);
    expect(await pidsInNetns(netnsPath(name))).toEqual([]);
  }, 30_000);
});
