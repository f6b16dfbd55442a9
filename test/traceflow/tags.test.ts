import { MAX_TAG } from '../../src/traceflow/api/types.js';
import { freeTag, tagConflicts } from '../../src/traceflow/model/tags.js';

describe('trace tags', () => {
  it('hands out the lowest free DSCP value, and none when all 63 are held', () => {
    expect(freeTag([])).toBe(1);
    expect(freeTag([1, 2, 4])).toBe(3);
    const all = Array.from({ length: MAX_TAG }, (_, i) => i + 1);
    expect(freeTag(all)).toBeUndefined();
    expect(freeTag(all.filter((t) => t !== 63))).toBe(63);
  });

  it('names the later holders of a tag held twice', () => {
    expect(tagConflicts([{ name: 'a', tag: 1 }, { name: 'b' }, { name: 'c', tag: 1 }, { name: 'd', tag: 2 }, { name: 'e', tag: 1 }])).toEqual(['c', 'e']);
    expect(tagConflicts([])).toEqual([]);
  });
});
