// Where the Service proxy lives in the pipeline: its tables inside the Service seam, the registers it uses, its
// group ids and its flow cookies.
import { CookieOwner, CookieScheme, type CookieSelector } from '../../ovs/openflow/index.js';
import { SEAMS, Table, type RegField } from '../../primary/pipeline/index.js';

/**
 * The Service seam (40..49). A new connection enters at Entry, looks up its client's affinity, is load balanced
 * (a select group per frontend), is translated to its endpoint and committed, and a pod reaching itself is
 * translated at the source too; then it goes on to egress policy, which sees the real endpoint.
 */
export const ServiceTable = {
  /** Established packets pass (the Conntrack table already translated them); new ones look up affinity, then the frontends. */
  Entry: Table.Service,
  /** Learned flows: a client's endpoint for a ClientIP-affinity frontend (until its idle timeout). */
  SessionAffinity: Table.Service + 1,
  /** One flow per frontend: to its group, or straight to the endpoint affinity chose. */
  ServiceLB: Table.Service + 2,
  /** Affinity frontends: remember the chosen endpoint for this client. */
  AffinityLearn: Table.Service + 3,
  /** One flow per endpoint: DNAT and commit. */
  EndpointDNAT: Table.Service + 4,
  /** After DNAT: a pod that reached itself is translated at the source too. */
  Hairpin: Table.Service + 5,
  exit: SEAMS.service.exit,
} as const;

/** reg3: the chosen endpoint's address. */
export const EndpointIpField: RegField = { reg: 3, start: 0, end: 31 };
/** reg4[0..15]: the chosen endpoint's port. */
export const EndpointPortField: RegField = { reg: 4, start: 0, end: 15 };
/** reg4[16]: affinity already chose the endpoint (reg3/reg4 hold it). */
export const AffinityChosenField: RegField = { reg: 4, start: 16, end: 16 };

/** ct_mark bit 1 (with the pipeline's SERVICE_CT_MARK): a pod's connection to itself, translated at the source too. */
export const HAIRPIN_CT_MARK = { value: 0x2, mask: 0x2 } as const;

/** The seam's owners stay below the pipeline's own priorities (SEAM_MAX_OWNER_PRIORITY). */
export const ServicePriority = {
  /** Replies to hairpin connections, their source translation undone by the Conntrack table: now the destination's. */
  hairpinReply: 64_999,
  /** Later packets of a hairpin connection: the source translation of their own zone too. */
  establishedHairpin: 64_998,
  /** Later packets of a translated connection to a local pod: delivered by this bridge like the first. */
  establishedLocal: 64_997,
  /** Established packets pass before any learned affinity flow can match them. */
  established: 64_996,
  /** A frontend whose client affinity already chose the endpoint. */
  affinityChosen: 300,
  /** Traffic from the cluster itself to a frontend whose external traffic stays local. */
  clusterSource: 210,
  normal: 200,
  miss: 0,
} as const;

/** Select groups of the proxy: one per frontend and variant. Ids below this are left to others. */
export const FIRST_GROUP_ID = 0x1_0000;
export const LAST_GROUP_ID = 0x7fff_ffff;
export const ownsGroup = (id: number): boolean => id >= FIRST_GROUP_ID && id <= LAST_GROUP_ID;

/**
 * The round of the proxy's cookies: always 0. Its sync owns every round, so a restarted agent (a new round for
 * the pipeline) finds its Service flows as it left them and changes only what changed meanwhile.
 */
export const SERVICE_ROUND = 0;

/** Flow cookies (owner `services`). Learned affinity flows carry `LEARNED_COOKIE`, outside the sync's scope. */
export class ServiceCookies {
  private readonly scheme: CookieScheme;
  constructor(round: number) {
    this.scheme = new CookieScheme(CookieOwner.services, round);
  }
  cookie(object = 0): bigint {
    return this.scheme.cookie(object);
  }
}

/** Every flow the proxy installs (the scope of its sync); affinities it learned are not in it. */
export function serviceScope(): CookieSelector {
  return new CookieScheme(CookieOwner.services, 0).all;
}

/** Cookie of learned affinity flows: their own owner, so no sync removes them (they go with their learn flow, or time out). */
export const LEARNED_COOKIE = new CookieScheme(CookieOwner.serviceAffinity, 0).cookie(0);
