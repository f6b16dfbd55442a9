import { CookieOwner, CookieScheme, MAX_OBJECT, objectSelector, ownerSelector, type CookieSelector } from '../../ovs/openflow/index.js';

/**
 * Cookie object ids of the primary network (40 bits): bits 32..39 say what kind of object a flow was
 * made for, bits 0..31 which one. Kind 0 holds the node-wide base flows (id 0) and the local pods (their
 * ofport, so a pod's flows keep the id the design names); kind 1 the peer nodes (their stable index).
 * Kinds 2 and 3 are reserved for the Service and NetworkPolicy stages so that their flows never fall
 * under a pipeline sync.
 */
export const ObjectKind = {
  nodeOrPod: 0,
  peer: 1,
  service: 2,
  policy: 3,
} as const;

const KIND_SHIFT = 32n;
const ID_MAX = 0xffff_ffff;

export const BASE_OBJECT = 0n;

function objectOf(kind: number, id: number): bigint {
  if (!Number.isInteger(id) || id < 0 || id > ID_MAX) throw new RangeError(`cookie object id ${id} outside 0..${ID_MAX}`);
  return (BigInt(kind) << KIND_SHIFT) | BigInt(id);
}

/** A local pod's object id: its ofport (never 0, which is the base flows'). */
export function podObject(ofport: number): bigint {
  if (ofport === 0) throw new RangeError('ofport 0 is not a pod port');
  return objectOf(ObjectKind.nodeOrPod, ofport);
}

export function peerObject(index: number): bigint {
  return objectOf(ObjectKind.peer, index);
}

export function objectKind(object: bigint): number {
  return Number(object >> KIND_SHIFT);
}

// Kinds 0 and 1 differ in bit 32 only: masking bits 33..39 selects both and nothing else.
const PIPELINE_KIND_MASK = MAX_OBJECT & ~((1n << (KIND_SHIFT + 1n)) - 1n);

/** Cookies of the primary pipeline in one agent round. */
export class PipelineCookies {
  readonly scheme: CookieScheme;

  constructor(readonly round: number) {
    this.scheme = new CookieScheme(CookieOwner.primary, round);
  }

  base(): bigint {
    return this.scheme.cookie(BASE_OBJECT);
  }

  pod(ofport: number): bigint {
    return this.scheme.cookie(podObject(ofport));
  }

  peer(index: number): bigint {
    return this.scheme.cookie(peerObject(index));
  }
}

/**
 * Every flow of the pipeline (base, pods, peers) of any round, and nothing of the Service or policy
 * stages: the scope of a full pipeline sync, which also removes what older rounds left behind.
 */
export function pipelineScope(): CookieSelector {
  const owner = ownerSelector(CookieOwner.primary);
  return { value: owner.value, mask: owner.mask | PIPELINE_KIND_MASK };
}

/** The node-wide base flows, any round. */
export function baseScope(): CookieSelector {
  return objectSelector(CookieOwner.primary, BASE_OBJECT);
}

/** One pod's flows, any round. */
export function podScope(ofport: number): CookieSelector {
  return objectSelector(CookieOwner.primary, podObject(ofport));
}

/** One peer's flows, any round. */
export function peerScope(index: number): CookieSelector {
  return objectSelector(CookieOwner.primary, peerObject(index));
}
