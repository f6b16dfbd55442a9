import { SerialPass } from '../../src/util/serial.js';

describe('SerialPass', () => {
  it('runs one pass at a time; requests meanwhile get exactly one more pass', async () => {
    let passes = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    let release!: () => void;
    let gate = new Promise<void>((r) => (release = r));
    const s = new SerialPass(async () => {
      passes++;
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      await gate;
      inFlight--;
    });
    const first = s.run();
    const during = [s.run(), s.run(), s.run()];
    expect(s.current).toBe(first);
    const open = release;
    gate = Promise.resolve();
    open();
    await Promise.all([first, ...during]);
    expect(passes).toBe(2);
    expect(maxInFlight).toBe(1);
    expect(s.current).toBeUndefined();
  });

  it('no extra pass once stopped, and a failing pass rejects its callers only', async () => {
    let stopped = false;
    let passes = 0;
    const s = new SerialPass(async () => {
      passes++;
      stopped = true;
    }, () => stopped);
    await Promise.all([s.run(), s.run()]);
    expect(passes).toBe(1);
    const f = new SerialPass(() => Promise.reject(new Error('boom')));
    await expect(f.run()).rejects.toThrow('boom');
    expect(f.current).toBeUndefined();
  });
});
