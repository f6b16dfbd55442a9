import { RequestScheduler } from '../../../src/primary/cniserver/scheduler.js';
import { deferred, sleep } from './helpers.js';

describe('RequestScheduler', () => {
  it('runs calls of one container in order, other containers alongside', async () => {
    const s = new RequestScheduler();
    const log: string[] = [];
    const gate = deferred();
    const a = s.attachment('c1', async () => {
      log.push('a+');
      await gate.promise;
      log.push('a-');
    });
    const b = s.attachment('c1', async () => void log.push('b'));
    const c = s.attachment('c2', async () => void log.push('c'));
    await sleep(10);
    expect(log).toEqual(['a+', 'c']);
    gate.resolve();
    await Promise.all([a, b, c]);
    expect(log).toEqual(['a+', 'c', 'a-', 'b']);
    expect(s.busyContainers).toBe(0);
  });

  it('runs at most maxConcurrentCalls calls at once; the others start in arrival order', async () => {
    const s = new RequestScheduler(2);
    const log: string[] = [];
    const gates = [deferred(), deferred(), deferred(), deferred()];
    const calls = gates.map((g, i) =>
      s.attachment(`c${i}`, async () => {
        log.push(`${i}+`);
        await g.promise;
      }),
    );
    await sleep(10);
    expect(log).toEqual(['0+', '1+']);
    gates[1]!.resolve();
    await calls[1];
    await sleep(10);
    expect(log).toEqual(['0+', '1+', '2+']);
    gates[0]!.resolve();
    await calls[0];
    await sleep(10);
    expect(log).toEqual(['0+', '1+', '2+', '3+']);
    gates[2]!.resolve();
    gates[3]!.resolve();
    await Promise.all(calls);
    expect(() => new RequestScheduler(0)).toThrow(RangeError);
  });

  it('a failed call does not block the next one of its container', async () => {
    const s = new RequestScheduler();
    await expect(s.attachment('c1', () => Promise.reject(new Error('x')))).rejects.toThrow('x');
    await expect(s.attachment('c1', async () => 7)).resolves.toBe(7);
  });

  it('exclusive calls wait for running calls, hold back new ones, and run one at a time', async () => {
    const s = new RequestScheduler();
    const log: string[] = [];
    const gate = deferred();
    const a = s.attachment('c1', async () => {
      await gate.promise;
      log.push('a');
    });
    const g1 = s.exclusive(async () => {
      log.push('g1+');
      await sleep(10);
      log.push('g1-');
    });
    const g2 = s.exclusive(async () => void log.push('g2'));
    const b = s.attachment('c2', async () => void log.push('b'));
    await sleep(10);
    expect(log).toEqual([]);
    gate.resolve();
    await Promise.all([a, g1, g2, b]);
    expect(log).toEqual(['a', 'g1+', 'g1-', 'g2', 'b']);
  });

  it('a failing exclusive call releases the others', async () => {
    const s = new RequestScheduler();
    await expect(s.exclusive(() => Promise.reject(new Error('gc failed')))).rejects.toThrow('gc failed');
    await expect(s.attachment('c1', async () => 'ok')).resolves.toBe('ok');
  });
});

describe('RequestScheduler withdrawal', () => {
  it('an exclusive call aborted while waiting is withdrawn and lets others through', async () => {
    const s = new RequestScheduler();
    const hung = deferred();
    const a = s.attachment('c1', () => hung.promise);
    const ac = new AbortController();
    let gcRan = false;
    const g = s.exclusive(async () => {
      gcRan = true;
    }, ac.signal);
    const b = s.attachment('c2', async () => 'b');
    await sleep(10);
    ac.abort(new Error('gc timed out'));
    await expect(g).rejects.toThrow('gc timed out');
    await expect(b).resolves.toBe('b');
    expect(gcRan).toBe(false);
    hung.resolve();
    await a;
  });

  it('aborting a running exclusive call does not let attachment calls in', async () => {
    const s = new RequestScheduler();
    const ac = new AbortController();
    const gate = deferred();
    const log: string[] = [];
    const g = s.exclusive(async () => {
      await gate.promise;
      log.push('gc');
    }, ac.signal);
    await sleep(5);
    ac.abort(new Error('late'));
    const b = s.attachment('c1', async () => void log.push('b'));
    await sleep(10);
    expect(log).toEqual([]);
    gate.resolve();
    await Promise.all([g, b]);
    expect(log).toEqual(['gc', 'b']);
  });
});
