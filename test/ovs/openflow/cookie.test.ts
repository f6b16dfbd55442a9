import {
  CookieOwner,
  CookieScheme,
  decodeCookie,
  exactSelector,
  makeCookie,
  nextRound,
  objectSelector,
  ownerSelector,
  renderSelector,
  roundSelector,
  selectorMatches,
} from '../../../src/ovs/openflow/cookie.js';

describe('cookie scheme', () => {
  it('packs owner in bits 56-63, round in 40-55 and object in 0-39', () => {
    expect(makeCookie(CookieOwner.primary, 0, 0)).toBe(0x0100000000000000n);
    expect(makeCookie(CookieOwner.chaining, 0xabcd, 0x12_3456_789an)).toBe(0x03abcd123456789an);
    expect(makeCookie(0xff, 0xffff, (1n << 40n) - 1n)).toBe((1n << 64n) - 1n);
    expect(decodeCookie(0x03abcd123456789an)).toEqual({ owner: 3, round: 0xabcd, object: 0x123456789an });
  });

  it('rejects values that do not fit their bits', () => {
    expect(() => makeCookie(256, 0, 0)).toThrow(RangeError);
    expect(() => makeCookie(1, 0x10000, 0)).toThrow(RangeError);
    expect(() => makeCookie(1, 0, 1n << 40n)).toThrow(RangeError);
    expect(() => makeCookie(1, -1, 0)).toThrow(RangeError);
    expect(() => makeCookie(1, 0, 1.5)).toThrow(RangeError);
  });

  it('selects everything of an owner, of an owner and round, of an owner and object', () => {
    const a = makeCookie(1, 7, 42);
    const b = makeCookie(1, 8, 42);
    const c = makeCookie(1, 7, 43);
    const d = makeCookie(2, 7, 42);
    const owner = ownerSelector(1);
    expect([a, b, c, d].map((x) => selectorMatches(owner, x))).toEqual([true, true, true, false]);
    const round = roundSelector(1, 7);
    expect([a, b, c, d].map((x) => selectorMatches(round, x))).toEqual([true, false, true, false]);
    const object = objectSelector(1, 42);
    expect([a, b, c, d].map((x) => selectorMatches(object, x))).toEqual([true, true, false, false]);
    expect(selectorMatches(exactSelector(a), a)).toBe(true);
    expect(selectorMatches(exactSelector(a), b)).toBe(false);
  });

  it('renders selectors as ovs-ofctl cookie=VALUE/MASK', () => {
    expect(renderSelector(ownerSelector(2))).toBe('0x200000000000000/0xff00000000000000');
    expect(renderSelector(roundSelector(1, 3))).toBe('0x100030000000000/0xffffff0000000000');
    expect(renderSelector(objectSelector(3, 0x10))).toBe('0x300000000000010/0xff0000ffffffffff');
    expect(renderSelector(exactSelector(5n))).toBe('0x5/0xffffffffffffffff');
  });

  it('wraps rounds within 16 bits', () => {
    expect(nextRound(0)).toBe(1);
    expect(nextRound(0xffff)).toBe(0);
  });

  it('CookieScheme binds owner and round', () => {
    const s = new CookieScheme(CookieOwner.secondary, 9);
    expect(s.cookie(5)).toBe(makeCookie(2, 9, 5));
    expect(s.all).toEqual(ownerSelector(2));
    expect(s.thisRound).toEqual(roundSelector(2, 9));
    expect(s.object(5)).toEqual(objectSelector(2, 5));
  });
});
