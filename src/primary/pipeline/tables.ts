/**
 * The primary network's OpenFlow tables, in pipeline order. Numbers are fixed (not allocated at
 * runtime) so that dumps, traces and later owners of the seam tables can rely on them; the gaps leave
 * room for tables added inside a stage without renumbering the rest.
 */
export const Table = {
  Classifier: 0,
  SpoofGuard: 10,
  ARPResponder: 20,
  Conntrack: 30,
  ConntrackState: 31,
  /** Seam: first Service table (40..49 are reserved for Services). */
  Service: 40,
  /** Seam: first egress NetworkPolicy table (50..64 are reserved for egress policy). */
  EgressPolicy: 50,
  /** Seam: first service-chain table (65..69 are reserved for service chains: classification and steering). */
  ServiceChain: 65,
  L3Forwarding: 70,
  L2ForwardingCalc: 80,
  /** Seam: first ingress NetworkPolicy table (90..104 are reserved for ingress policy). */
  IngressPolicy: 90,
  ConntrackCommit: 105,
  Output: 110,
} as const;

export type TableName = keyof typeof Table;
export type TableId = (typeof Table)[TableName];

export interface TableInfo {
  name: TableName;
  id: TableId;
  /** True for a seam: a stage whose real flows a later component installs; the pipeline only passes traffic through. */
  seam: boolean;
}

/** Every table of the pipeline in the order a packet may visit them (ascending ids: goto_table only goes forward). */
export const TABLES: readonly TableInfo[] = (Object.keys(Table) as TableName[]).map((name) => ({
  name,
  id: Table[name],
  seam: name === 'Service' || name === 'EgressPolicy' || name === 'ServiceChain' || name === 'IngressPolicy',
}));

/** The table's name, for logs and dumps. */
export function tableName(id: number): TableName | undefined {
  return TABLES.find((t) => t.id === id)?.name;
}

/**
 * A stage reserved for a later component. Its owner installs flows in tables first..last only, at
 * priorities 1..SEAM_MAX_OWNER_PRIORITY, and sends what it lets through on with goto_table to `exit`.
 * The pipeline keeps a priority-0 pass-through flow to `exit` in `first` (and, in the policy seams, the
 * established bypass).
 */
export interface Seam {
  first: TableId;
  last: number;
  /** Where traffic goes when the stage has nothing to say: the next stage's first table. */
  exit: TableId;
}

export const SEAMS = {
  service: { first: Table.Service, last: 49, exit: Table.EgressPolicy },
  egressPolicy: { first: Table.EgressPolicy, last: 64, exit: Table.ServiceChain },
  /** After egress policy (a client's policy applies before its traffic is steered), before routing. */
  serviceChain: { first: Table.ServiceChain, last: 69, exit: Table.L3Forwarding },
  ingressPolicy: { first: Table.IngressPolicy, last: 104, exit: Table.ConntrackCommit },
} as const satisfies Record<string, Seam>;

/** Priorities the pipeline uses. Flows of one table that can match the same packet differ in priority. */
export const Priority = {
  /** Table-miss: drop, or pass on to the next stage. */
  miss: 0,
  normal: 200,
  /** Narrower than `normal` in the same table (e.g. from-gateway variant of a route). */
  specific: 210,
  /** A local pod subnet route, below the per-address flows. */
  subnet: 190,
  /** Cluster CIDR catch-all, below every known pod subnet. */
  cluster: 180,
  /** Above every per-destination flow of its table (what must go through the node's kernel whatever its destination). */
  overriding: 220,
  /** Established/related connections skip the policy seams; above anything a policy owner installs. */
  establishedBypass: 65000,
} as const;

/** Highest priority a seam owner may use in its tables. */
export const SEAM_MAX_OWNER_PRIORITY = Priority.establishedBypass - 1;

/** Conntrack zone of the primary network. */
export const CT_ZONE = 65520;
/** Conntrack zone of the Service stage's source translation (hairpin): a connection holds one translation per zone. */
export const CT_SNAT_ZONE = 65521;
/**
 * Source address of a pod's connection to itself through a Service (its own address would be martian to it). Its
 * replies are translated back in CT_SNAT_ZONE before the primary zone sees them (to which they would be invalid).
 */
export const HAIRPIN_VIRTUAL_IP = '169.254.0.254';
/**
 * The node's kernel DNATs node-port traffic to this address (same port) and routes it into OVS. A reply the Service
 * stage translated back to it goes to the kernel, whatever its destination, for the node port's own translation.
 */
export const NODEPORT_VIRTUAL_IP = '169.254.0.252';


/** Destination MAC of routed packets sent into a tunnel; the receiving node rewrites it. */
export const GLOBAL_VIRTUAL_MAC = 'aa:bb:cc:dd:ee:ff';
