import { describe, expect, it } from '@jest/globals';
import { realizedCondition } from '../../src/policy/controller/controller.js';
import { Realization } from '../../src/policy/controller/realization.js';

describe('policy realization', () => {
  it('counts the nodes of the span that report the current generation', () => {
    const r = new Realization();
    const span = new Set(['n1', 'n2', 'n3']);
    expect(r.of('p', 2, span)).toEqual({ desired: 3, realized: 0, pending: ['n1', 'n2', 'n3'] });
    expect(r.report('n1', { p: 2 })).toBe(true);
    expect(r.report('n1', { p: 2 })).toBe(false);
    r.report('n2', { p: 1 }); // an older generation is not this one
    r.report('n4', { p: 2 }); // outside the span: does not count
    expect(r.of('p', 2, span)).toEqual({ desired: 3, realized: 1, pending: ['n2', 'n3'] });
    r.report('n2', { p: 2 });
    r.report('n3', { p: 2, q: 1 });
    expect(r.of('p', 2, span)).toEqual({ desired: 3, realized: 3, pending: [] });
    r.forget('n3');
    expect(r.of('p', 2, span).realized).toBe(2);
  });

  it('makes a Realized condition that keeps its transition time while its status stays', () => {
    const t0 = new Date('2026-01-01T00:00:00Z');
    const t1 = new Date('2026-01-01T00:01:00Z');
    const pending = realizedCondition({ desired: 5, realized: 1, pending: ['n2', 'n3', 'n4'] }, 3, undefined, t0);
    expect(pending).toMatchObject({ type: 'Realized', status: 'False', reason: 'Pending', observedGeneration: 3, message: 'realized on 1 of 5 nodes; waiting for n2, n3, n4, ...' });
    const still = realizedCondition({ desired: 5, realized: 4, pending: ['n5'] }, 3, pending, t1);
    expect(still.lastTransitionTime).toBe(t0);
    expect(still.message).toBe('realized on 4 of 5 nodes; waiting for n5');
    const done = realizedCondition({ desired: 5, realized: 5, pending: [] }, 3, still, t1);
    expect(done).toMatchObject({ status: 'True', reason: 'Realized', message: 'realized on 5 of 5 nodes', lastTransitionTime: t1 });
    expect(realizedCondition({ desired: 0, realized: 0, pending: [] }, 1, undefined, t1)).toMatchObject({ status: 'True', reason: 'NoPods', message: 'applies to no pod' });
  });
});
