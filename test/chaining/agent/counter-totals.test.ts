import { describe, expect, it } from '@jest/globals';
import { CounterTotals, type TrafficCounters } from '../../../src/chaining/agent/counter-totals.js';

const reading = (pf: number, pr = 0, bf = pf * 100, br = pr * 100): TrafficCounters => ({ packets: { forward: pf, reverse: pr }, bytes: { forward: bf, reverse: br } });

describe('chain counter totals', () => {
  it('follow the flows while they keep counting', () => {
    const t = new CounterTotals();
    expect(t.totals('c', reading(5, 2))).toEqual(reading(5, 2));
    expect(t.totals('c', reading(9, 2))).toEqual(reading(9, 2));
  });

  it('keep what reinstalled flows had counted (ovs-vswitchd restart), each field on its own', () => {
    const t = new CounterTotals();
    t.totals('c', reading(100, 40));
    // The forward flow restarted from zero; the reverse one was not replaced.
    expect(t.totals('c', { packets: { forward: 3, reverse: 45 }, bytes: { forward: 300, reverse: 4500 } })).toEqual({ packets: { forward: 103, reverse: 45 }, bytes: { forward: 10_300, reverse: 4500 } });
    // Twice.
    t.totals('c', reading(50, 45));
    expect(t.totals('c', reading(1, 45)).packets.forward).toBe(151);
  });

  it('carry on from what the node reported before a restart, unless the flows kept their counters', () => {
    const t = new CounterTotals();
    t.seed('reset', reading(1000, 10));
    t.seed('kept', reading(1000, 10));
    // Flows reinstalled meanwhile: their readings start below what was reported.
    expect(t.totals('reset', reading(4, 1))).toEqual({ packets: { forward: 1004, reverse: 11 }, bytes: { forward: 100_400, reverse: 1100 } });
    // Flows that kept counting: the reading already includes what was reported.
    expect(t.totals('kept', reading(1200, 12))).toEqual(reading(1200, 12));
    expect(t.totals('reset', reading(10, 1)).packets.forward).toBe(1010);
  });

  it('forget chains and replicas that are gone', () => {
    const t = new CounterTotals();
    t.totals('gone', reading(10));
    t.totals('kept', reading(10));
    t.seed('gone-too', reading(99));
    t.retain(new Set(['kept']));
    expect(t.totals('gone', reading(2))).toEqual(reading(2));
    expect(t.totals('gone-too', reading(2))).toEqual(reading(2));
    expect(t.totals('kept', reading(2)).packets.forward).toBe(12);
  });
});
