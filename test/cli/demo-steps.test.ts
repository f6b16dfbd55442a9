import { DemoSteps } from '../../src/cli/demo-steps.js';

describe('the demo\'s steps', () => {
  it('says how long each step took, also a failed one, and sums them up in a table', async () => {
    let now = 0;
    const lines: string[] = [];
    const steps = new DemoSteps((l) => lines.push(l), () => now);
    expect(await steps.run('lab up', async () => ((now += 8200), 'up'))).toBe('up');
    await expect(steps.run('service chain', async () => {
      now += 1500;
      throw new Error('no chained packets');
    })).rejects.toThrow('no chained packets');
    expect(lines).toEqual(['  [lab up: 8.2 s]', '  [service chain: 1.5 s, failed]']);
    expect(steps.summary().split('\n').map((l) => l.trimEnd())).toEqual(['STEP                     SECONDS', 'lab up                   8.2', 'service chain (failed)   1.5', 'total                    9.7']);
  });
});
