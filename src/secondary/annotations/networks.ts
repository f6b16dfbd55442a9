// The pod annotation k8s.v1.cni.cncf.io/networks (multi-network spec v1.2 section 4.1, with v1.3's
// ipam-claim-reference): which NetworkAttachmentDefinitions a pod is attached to, and how.
import { ipFamily } from '../../cni/schema/validate.js';
import { NetworksAnnotationError, type AnnotationProblem } from './errors.js';
import { ajv, check, normalizeMac } from './validation.js';

export interface PortMapping {
  hostPort?: number;
  containerPort: number;
  protocol?: string;
  hostIP?: string;
}

export interface Bandwidth {
  ingressRate?: number;
  ingressBurst?: number;
  egressRate?: number;
  egressBurst?: number;
}

/** One element of the annotation, as written (interface possibly absent). */
export interface NetworkSelectionRequest {
  /** The NAD's namespace: the pod's when the element names none. */
  namespace: string;
  /** The NAD's name. */
  name: string;
  /** Requested interface name in the pod. */
  interface?: string;
  /** Requested addresses with prefix (CIDR), e.g. 10.1.1.5/24. */
  ips?: string[];
  /** Requested MAC, normalized to lowercase colon form. */
  mac?: string;
  /** Gateways for the pod's default route through this attachment (`default-route`). */
  defaultRoute?: string[];
  /** `cni-args`: merged into the CNI config's `args`. */
  cniArgs?: Record<string, unknown>;
  portMappings?: PortMapping[];
  bandwidth?: Bandwidth;
  /** `infiniband-guid` */
  infinibandGuid?: string;
  /** `ipam-claim-reference` (v1.3): name of an IPAMClaim in the pod's namespace. */
  ipamClaimReference?: string;
}

/** An element with its interface name settled. */
export interface NetworkSelection extends NetworkSelectionRequest {
  interface: string;
  /** Position in the annotation (0-based): attachments happen in this order. */
  index: number;
  /** The interface name came from the position (net<N>), not from the annotation. */
  autoNamed?: true;
}

export interface ParseOptions {
  /** The default network's interface in the pod, which no attachment may take (default eth0). */
  defaultInterface?: string;
}

/** The spec's JSON element; unknown keys are ignored, as the spec says. */
const elementSchema = {
  type: 'object',
  required: ['name'],
  properties: {
    name: { type: 'string', format: 'dns-subdomain' },
    namespace: { type: 'string', format: 'dns-label' },
    interface: { type: 'string', format: 'ifname' },
    ips: { type: 'array', items: { type: 'string', format: 'cidr' } },
    mac: { type: 'string', format: 'mac' },
    'default-route': { type: 'array', items: { type: 'string', format: 'ip' } },
    'cni-args': { type: ['object', 'null'] },
    portMappings: {
      type: 'array',
      items: {
        type: 'object',
        required: ['containerPort'],
        properties: {
          hostPort: { type: 'integer', minimum: 0, maximum: 65535 },
          containerPort: { type: 'integer', minimum: 1, maximum: 65535 },
          protocol: { enum: ['tcp', 'udp', 'sctp', 'TCP', 'UDP', 'SCTP'] },
          hostIP: { type: 'string', format: 'ip' },
        },
      },
    },
    bandwidth: {
      type: 'object',
      properties: {
        ingressRate: { type: 'integer', minimum: 0 },
        ingressBurst: { type: 'integer', minimum: 0 },
        egressRate: { type: 'integer', minimum: 0 },
        egressBurst: { type: 'integer', minimum: 0 },
      },
    },
    'infiniband-guid': { type: 'string', format: 'ib-guid' },
    'ipam-claim-reference': { type: 'string', format: 'dns-subdomain' },
  },
} as const;

const validateElement = ajv.compile(elementSchema);

type RawElement = {
  name: string;
  namespace?: string;
  interface?: string;
  ips?: string[];
  mac?: string;
  'default-route'?: string[];
  'cni-args'?: Record<string, unknown> | null;
  portMappings?: PortMapping[];
  bandwidth?: Bandwidth;
  'infiniband-guid'?: string;
  'ipam-claim-reference'?: string;
};

function label(raw: unknown, podNamespace: string): string | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const { name, namespace } = raw as { name?: unknown; namespace?: unknown };
  if (typeof name !== 'string') return undefined;
  return JSON.stringify(`${typeof namespace === 'string' && namespace ? namespace : podNamespace}/${name}`);
}

/** Checks beyond the schema: duplicates and at most one gateway per family. */
function semanticProblems(e: RawElement): string[] {
  const out: string[] = [];
  const dupes = (list: string[], field: string, norm: (s: string) => string): void => {
    const seen = new Set<string>();
    for (const x of list) {
      const k = norm(x);
      if (seen.has(k)) out.push(`${field}: ${JSON.stringify(x)} is listed twice`);
      seen.add(k);
    }
  };
  if (e.ips) dupes(e.ips, 'ips', (c) => c.slice(0, c.lastIndexOf('/')).toLowerCase());
  if (e['default-route']) {
    dupes(e['default-route'], 'default-route', (g) => g.toLowerCase());
    for (const fam of [4, 6] as const) {
      if (e['default-route'].filter((g) => ipFamily(g) === fam).length > 1) out.push(`default-route: at most one IPv${fam} gateway`);
    }
  }
  return out;
}

function toRequest(e: RawElement, podNamespace: string): NetworkSelectionRequest {
  const r: NetworkSelectionRequest = { namespace: e.namespace || podNamespace, name: e.name };
  if (e.interface !== undefined) r.interface = e.interface;
  if (e.ips !== undefined) r.ips = [...e.ips];
  if (e.mac !== undefined) r.mac = normalizeMac(e.mac)!;
  // An empty list asks for nothing: no gateway to route through.
  if (e['default-route']?.length) r.defaultRoute = [...e['default-route']];
  if (e['cni-args']) r.cniArgs = structuredClone(e['cni-args']);
  if (e.portMappings !== undefined) r.portMappings = structuredClone(e.portMappings);
  if (e.bandwidth !== undefined) r.bandwidth = { ...e.bandwidth };
  if (e['infiniband-guid'] !== undefined) r.infinibandGuid = e['infiniband-guid'].toLowerCase();
  if (e['ipam-claim-reference'] !== undefined) r.ipamClaimReference = e['ipam-claim-reference'];
  return r;
}

/** `[ns/]name[@ifname]` of the comma form as a JSON element; undefined with a problem when malformed. */
function fromShortForm(item: string): { element?: RawElement; problem?: string } {
  const slash = item.split('/');
  if (slash.length > 2) return { problem: `${JSON.stringify(item)} has more than one "/" (expected [namespace/]name[@interface])` };
  const rest = slash[slash.length - 1]!;
  const at = rest.split('@');
  if (at.length > 2) return { problem: `${JSON.stringify(item)} has more than one "@" (expected [namespace/]name[@interface])` };
  const element: RawElement = { name: at[0]!.trim() };
  if (slash.length === 2) {
    element.namespace = slash[0]!.trim();
    if (!element.namespace) return { problem: `${JSON.stringify(item)} has an empty namespace before "/"` };
  }
  if (at.length === 2) {
    element.interface = at[1]!.trim();
    if (!element.interface) return { problem: `${JSON.stringify(item)} has an empty interface name after "@"` };
  }
  if (!element.name) return { problem: `${JSON.stringify(item)} has no network name` };
  return { element };
}

/**
 * Parses the annotation's value: the comma form (`net-a, other-ns/net-b@vlan100`) or the JSON list of
 * selection objects. Unnamespaced elements mean the pod's namespace; interfaces default to net1, net2,
 * ... by position; see assignInterfaceNames for the collision rules. At most one element may carry
 * `default-route`. Any invalid element makes the whole annotation invalid: NetworksAnnotationError lists
 * every problem, naming element and field. An empty value selects nothing.
 */
export function parseNetworksAnnotation(value: string, podNamespace: string, opts: ParseOptions = {}): NetworkSelection[] {
  const text = value.trim();
  if (text === '') return [];
  const problems: AnnotationProblem[] = [];
  const elements: Array<RawElement | undefined> = [];
  // As Multus tells the forms apart: any JSON punctuation means JSON.
  if (/[[{"]/.test(text)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new NetworksAnnotationError([{ message: `not valid JSON (${(e as Error).message})` }]);
    }
    if (!Array.isArray(parsed)) throw new NetworksAnnotationError([{ message: 'must be a JSON list of network selection objects, or a comma-separated list of network names' }]);
    parsed.forEach((raw: unknown, index) => {
      const found = check(validateElement, raw);
      const element = label(raw, podNamespace);
      if (found.length) {
        problems.push(...found.map((message) => ({ index, ...(element ? { element } : {}), message: message.startsWith('(root)') ? 'must be an object with a "name"' : message })));
        elements.push(undefined);
        return;
      }
      const more = semanticProblems(raw as RawElement);
      problems.push(...more.map((message) => ({ index, ...(element ? { element } : {}), message })));
      elements.push(more.length ? undefined : (raw as RawElement));
    });
  } else {
    text.split(',').forEach((part, index) => {
      const item = part.trim();
      if (!item) {
        problems.push({ index, message: 'is empty (stray comma?)' });
        elements.push(undefined);
        return;
      }
      const { element, problem } = fromShortForm(item);
      const found = problem ? [problem] : check(validateElement, element);
      problems.push(...found.map((message) => ({ index, element: JSON.stringify(item), message })));
      elements.push(found.length ? undefined : element);
    });
  }
  const defaultRoutes = elements.flatMap((e, i) => (e?.['default-route']?.length ? [i] : []));
  for (const i of defaultRoutes.slice(1)) {
    problems.push({ index: i, element: label(elements[i], podNamespace)!, message: `default-route: only one element may carry it (element ${defaultRoutes[0]! + 1} already does)` });
  }
  if (problems.length) throw new NetworksAnnotationError(problems);
  return assignInterfaceNames(
    elements.map((e) => toRequest(e!, podNamespace)),
    opts,
  );
}

/**
 * Settles interface names: a requested one is kept, others become net<N> where N is the element's
 * position counted from 1 (Multus's convention). Two attachments with one name, or one named like the
 * default network's interface, fail with NetworksAnnotationError. The same network may appear several
 * times (on different interfaces).
 */
export function assignInterfaceNames(requests: readonly NetworkSelectionRequest[], opts: ParseOptions = {}): NetworkSelection[] {
  const defaultInterface = opts.defaultInterface ?? 'eth0';
  const problems: AnnotationProblem[] = [];
  const taken = new Map<string, number>();
  const out = requests.map((r, index): NetworkSelection => {
    const name = r.interface ?? `net${index + 1}`;
    const element = JSON.stringify(`${r.namespace}/${r.name}`);
    if (name === defaultInterface) problems.push({ index, element, message: `interface: ${JSON.stringify(name)} is the default network's interface` });
    else if (taken.has(name)) problems.push({ index, element, message: `interface: ${JSON.stringify(name)} is already used by element ${taken.get(name)! + 1}` });
    else taken.set(name, index);
    return { ...structuredClone(r), interface: name, index, ...(r.interface === undefined ? { autoNamed: true as const } : {}) };
  });
  if (problems.length) throw new NetworksAnnotationError(problems);
  return out;
}

/** "namespace/name" of the selected NAD. */
export function networkRef(s: Pick<NetworkSelectionRequest, 'namespace' | 'name'>): string {
  return `${s.namespace}/${s.name}`;
}

/** An attachment's identity: the NAD plus the interface ("ns/name@net1"). */
export function attachmentKey(s: Pick<NetworkSelection, 'namespace' | 'name' | 'interface'>): string {
  return `${s.namespace}/${s.name}@${s.interface}`;
}

/**
 * What the element asks of the plugins, by CNI capability name (runtimeConfig keys): `ips`, `mac`,
 * `portMappings`, `bandwidth`, `infinibandGUID`. Only requested ones are present.
 */
export function capabilityArgs(s: NetworkSelectionRequest): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (s.ips?.length) out.ips = [...s.ips];
  if (s.mac !== undefined) out.mac = s.mac;
  if (s.portMappings?.length) out.portMappings = structuredClone(s.portMappings);
  if (s.bandwidth !== undefined) out.bandwidth = { ...s.bandwidth };
  if (s.infinibandGuid !== undefined) out.infinibandGUID = s.infinibandGuid;
  return out;
}

