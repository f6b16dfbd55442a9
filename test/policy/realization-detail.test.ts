// What the controller's read API takes from the realization: every pending node (messages show a few), in order,
// and when each node last reported, also when its report did not change.
import { describe, expect, it } from '@jest/globals';
import { Realization } from '../../src/policy/controller/realization.js';

describe('policy realization, in full', () => {
  it('names every pending node when asked, the first few (in order) otherwise', () => {
    const r = new Realization();
    const span = new Set(['n5', 'n3', 'n1', 'n4', 'n2', 'n6']);
    r.report('n3', { p: 1 });
    expect(r.of('p', 1, span, Infinity)).toEqual({ desired: 6, realized: 1, pending: ['n1', 'n2', 'n4', 'n5', 'n6'] });
    expect(r.of('p', 1, span)).toEqual({ desired: 6, realized: 1, pending: ['n1', 'n2', 'n4'] });
  });

  it('keeps the time of each node\'s last report, changed or not, until the node is forgotten', () => {
    const r = new Realization();
    expect(r.lastReport('n1')).toBeUndefined();
    expect(r.report('n1', { p: 1 }, 1_000)).toBe(true);
    expect(r.report('n1', { p: 1 }, 5_000)).toBe(false);
    expect(r.lastReport('n1')).toEqual(new Date(5_000));
    r.forget('n1');
    expect(r.lastReport('n1')).toBeUndefined();
  });
});
