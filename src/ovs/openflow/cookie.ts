/**
 * Seine's 64-bit flow cookie layout:
 *
 *   bits 56..63  owner (the component that programs the flow)
 *   bits 40..55  round (incremented on every agent restart)
 *   bits  0..39  object id (what the flow was made for: a pod, a network, a chain hop...)
 *
 * Selecting flows by cookie/mask lets each owner read, sync or delete its own flows without touching
 * anyone else's, and lets a restarted agent remove what earlier rounds left behind.
 */

export const CookieOwner = {
  primary: 1,
  secondary: 2,
  chaining: 3,
  policy: 4,
  services: 5,
  /** Flows the Service proxy's learn actions create (client affinities): no sync owns them. */
  serviceAffinity: 6,
  /** A Traceflow's observation flows (object: its tag and observation point). */
  traceflow: 7,
} as const;

export type CookieOwnerName = keyof typeof CookieOwner;

const OWNER_SHIFT = 56n;
const ROUND_SHIFT = 40n;
const OWNER_MASK = 0xffn << OWNER_SHIFT;
const ROUND_MASK = 0xffffn << ROUND_SHIFT;
const OBJECT_MASK = (1n << 40n) - 1n;
const ALL_ONES = (1n << 64n) - 1n;

export const MAX_OWNER = 0xff;
export const MAX_ROUND = 0xffff;
export const MAX_OBJECT = OBJECT_MASK;

/** A cookie value and mask, as OpenFlow matches cookies: `(cookie & mask) == value`. */
export interface CookieSelector {
  value: bigint;
  mask: bigint;
}

export interface CookieParts {
  owner: number;
  round: number;
  object: bigint;
}

function checkOwner(owner: number): void {
  if (!Number.isInteger(owner) || owner < 0 || owner > MAX_OWNER) throw new RangeError(`cookie owner ${owner} outside 0..${MAX_OWNER}`);
}

function checkRound(round: number): void {
  if (!Number.isInteger(round) || round < 0 || round > MAX_ROUND) throw new RangeError(`cookie round ${round} outside 0..${MAX_ROUND}`);
}

function toObject(object: number | bigint): bigint {
  if (typeof object === 'number' && !Number.isSafeInteger(object)) throw new RangeError(`cookie object ${object} is not an integer`);
  const o = BigInt(object);
  if (o < 0n || o > OBJECT_MASK) throw new RangeError(`cookie object ${o} outside 0..2^40-1`);
  return o;
}

export function makeCookie(owner: number, round: number, object: number | bigint = 0n): bigint {
  checkOwner(owner);
  checkRound(round);
  return (BigInt(owner) << OWNER_SHIFT) | (BigInt(round) << ROUND_SHIFT) | toObject(object);
}

export function decodeCookie(cookie: bigint): CookieParts {
  return {
    owner: Number((cookie & OWNER_MASK) >> OWNER_SHIFT),
    round: Number((cookie & ROUND_MASK) >> ROUND_SHIFT),
    object: cookie & OBJECT_MASK,
  };
}

/** Everything of one owner, whatever the round and object. */
export function ownerSelector(owner: number): CookieSelector {
  checkOwner(owner);
  return { value: BigInt(owner) << OWNER_SHIFT, mask: OWNER_MASK };
}

/** Everything one owner installed in one round. */
export function roundSelector(owner: number, round: number): CookieSelector {
  checkOwner(owner);
  checkRound(round);
  return { value: (BigInt(owner) << OWNER_SHIFT) | (BigInt(round) << ROUND_SHIFT), mask: OWNER_MASK | ROUND_MASK };
}

/** Everything one owner installed for one object, in any round. */
export function objectSelector(owner: number, object: number | bigint): CookieSelector {
  checkOwner(owner);
  return { value: (BigInt(owner) << OWNER_SHIFT) | toObject(object), mask: OWNER_MASK | OBJECT_MASK };
}

/** Exactly one cookie. */
export function exactSelector(cookie: bigint): CookieSelector {
  return { value: cookie & ALL_ONES, mask: ALL_ONES };
}

export function selectorMatches(sel: CookieSelector, cookie: bigint): boolean {
  return (cookie & sel.mask) === (sel.value & sel.mask);
}

export function hex(v: bigint | number): string {
  return `0x${v.toString(16)}`;
}

/** `VALUE/MASK` as ovs-ofctl takes it after `cookie=`. */
export function renderSelector(sel: CookieSelector): string {
  return `${hex(sel.value & sel.mask)}/${hex(sel.mask)}`;
}

/** The round after `round`, wrapping within 16 bits. */
export function nextRound(round: number): number {
  checkRound(round);
  return (round + 1) & MAX_ROUND;
}

/** Cookies and selectors of one owner in its current round. */
export class CookieScheme {
  constructor(
    readonly owner: number,
    readonly round: number,
  ) {
    checkOwner(owner);
    checkRound(round);
  }

  cookie(object: number | bigint = 0n): bigint {
    return makeCookie(this.owner, this.round, object);
  }

  /** All flows of this owner (every round): the scope of a full sync. */
  get all(): CookieSelector {
    return ownerSelector(this.owner);
  }

  get thisRound(): CookieSelector {
    return roundSelector(this.owner, this.round);
  }

  object(object: number | bigint): CookieSelector {
    return objectSelector(this.owner, object);
  }
}
