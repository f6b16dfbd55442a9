import { ReplicaHealth, probeTimeoutMs, type ReplicaCheck } from '../../../src/chaining/agent/health.js';
import { probeFrame } from '../../../src/chaining/agent/probe.js';

describe('replica health', () => {
  let now = 0;
  const clock = (): number => now;
  const check = (over: Partial<ReplicaCheck> = {}): ReplicaCheck => ({ key: 'r', podReady: true, portsPresent: true, probe: { periodMs: 1000, failureThreshold: 2 }, ...over });

  beforeEach(() => {
    now = 1_000_000;
  });

  it('is healthy once a probe came back, and unhealthy after failureThreshold probes in a row did not', () => {
    const h = new ReplicaHealth(clock);
    expect(h.due([check()])).toEqual(['r']);
    expect(h.evaluate([check()]).verdicts.get('r')).toMatchObject({ healthy: false, reason: 'Probing' });
    expect(probeTimeoutMs(1000)).toBe(500);
    expect(probeTimeoutMs(600)).toBe(300);
    h.returned('r');
    expect(h.evaluate([check()])).toMatchObject({ changed: ['r'] });
    expect(h.evaluate([check()]).verdicts.get('r')?.healthy).toBe(true);
    // Not due again before the period.
    now += 500;
    expect(h.due([check()])).toEqual([]);
    // Two probes go unanswered: each is missed half a period after it was sent, and a miss sends the next probe at
    // once (one period plus two timeouts from the first unanswered probe's due time to the verdict).
    now += 500;
    expect(h.due([check()])).toEqual(['r']);
    now += 250;
    expect(h.due([check()])).toEqual([]);
    now += 250;
    expect(h.due([check()])).toEqual(['r']);
    expect(h.evaluate([check()]).verdicts.get('r')?.healthy).toBe(true);
    now += 500;
    h.due([check()]);
    const v = h.evaluate([check()]);
    expect(v.verdicts.get('r')).toMatchObject({ healthy: false, reason: 'ProbeFailed' });
    expect(v.changed).toEqual(['r']);
    // One probe back: healthy again.
    h.returned('r');
    expect(h.evaluate([check()]).verdicts.get('r')?.healthy).toBe(true);
  });

  it('neither sends nor counts probes while nothing can be observed', () => {
    const h = new ReplicaHealth(clock);
    h.due([check()]);
    h.returned('r');
    h.evaluate([check()]);
    for (let i = 0; i < 10; i++) {
      now += 1000;
      expect(h.due([check()], false)).toEqual([]);
    }
    expect(h.evaluate([check()]).verdicts.get('r')?.healthy).toBe(true);
    // Observing again: the next probe goes out at once.
    expect(h.due([check()], true)).toEqual(['r']);
  });

  it('needs the pod Ready and both ports, and forgets replicas no longer checked', () => {
    const h = new ReplicaHealth(clock);
    expect(h.evaluate([check({ probe: undefined, podReady: false })]).verdicts.get('r')).toMatchObject({ healthy: false, reason: 'PodNotReady' });
    expect(h.evaluate([check({ probe: undefined, portsPresent: false })]).verdicts.get('r')).toMatchObject({ healthy: false, reason: 'InterfacesMissing' });
    expect(h.evaluate([check({ probe: undefined })]).verdicts.get('r')?.healthy).toBe(true);
    expect(h.evaluate([]).verdicts.size).toBe(0);
  });

  it('keeps a seeded healthy verdict (an agent restart) until probes say otherwise', () => {
    const h = new ReplicaHealth(clock);
    const since = new Date(5);
    h.seed('r', true, since);
    const v = h.evaluate([check()]);
    expect(v.verdicts.get('r')).toEqual({ healthy: true, since });
    expect(v.changed).toEqual([]);
  });
});

describe('probe frames', () => {
  it('carry a valid IPv4 header checksum, UDP to port 7 and the payload', () => {
    const b = probeFrame('02:00:00:00:00:01', 'seine-probe 1/0/2 9');
    expect(b.subarray(0, 6).toString('hex')).toBe('020000000001');
    expect(b.readUInt16BE(12)).toBe(0x0800);
    const ip = b.subarray(14, 34);
    let sum = 0;
    for (let i = 0; i < 20; i += 2) sum += ip.readUInt16BE(i);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    expect(sum).toBe(0xffff);
    expect(ip[9]).toBe(17);
    expect(b.readUInt16BE(36)).toBe(7);
    expect(b.subarray(42).toString()).toBe('seine-probe 1/0/2 9');
  });
});
