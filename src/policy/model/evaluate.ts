// The verdict the policy model gives a connection: the reference the datapath is checked against (truth tables in
// the tests) and what tools explain a drop with. Pure: everything it needs is in the arguments.
import { cidrRange } from '../../ipam/ipv4-set.js';
import { ipv4ToInt } from '../../ipam/subnets.js';
import { groupMatches } from './groups.js';
import type { CompiledPolicy, CompiledRule, Direction, IpBlock, PodGroupSpec, Protocol, RulePort, Tier } from './types.js';

export interface WorldPod {
  namespace: string;
  name: string;
  ip: string;
  labels?: Record<string, string>;
  /** Container ports by name (a named port resolves per protocol). */
  namedPorts?: ReadonlyArray<{ name: string; protocol: Protocol; port: number }>;
}

export interface World {
  pods: readonly WorldPod[];
  namespaceLabels: ReadonlyMap<string, Record<string, string>>;
  policies: readonly CompiledPolicy[];
  groups: ReadonlyMap<string, PodGroupSpec>;
}

/** One end of a connection: a pod, or an address outside the pod network. */
export type Endpoint = { pod: WorldPod } | { ip: string };

export interface Verdict {
  allowed: boolean;
  /** Which policy and rule decided, when one did ("default" otherwise). */
  by: string;
}

const ipOf = (e: Endpoint): string => ('pod' in e ? e.pod.ip : e.ip);

function inBlock(ip: string, b: IpBlock): boolean {
  const a = ipv4ToInt(ip);
  const within = (cidr: string): boolean => {
    const [lo, hi] = cidrRange(cidr);
    return a >= lo && a <= hi;
  };
  return within(b.cidr) && !(b.except ?? []).some(within);
}

function member(world: World, key: string, pod: WorldPod): boolean {
  const g = world.groups.get(key);
  return !!g && groupMatches(g, pod, world.namespaceLabels.get(pod.namespace));
}

function portMatches(p: RulePort, protocol: Protocol, port: number, destination: WorldPod | undefined): boolean {
  if (p.protocol !== undefined && p.protocol !== protocol) return false;
  if (p.name !== undefined) return !!destination?.namedPorts?.some((n) => n.name === p.name && n.protocol === protocol && n.port === port);
  if (p.protocol === undefined) return false;
  if (p.port === undefined) return true;
  return port >= p.port && port <= (p.endPort ?? p.port);
}

function ruleMatches(world: World, rule: CompiledRule, peer: Endpoint, protocol: Protocol, port: number, destination: WorldPod | undefined): boolean {
  const peerOk = rule.peers.any || rule.peers.ipBlocks.some((b) => inBlock(ipOf(peer), b)) || ('pod' in peer && rule.peers.groups.some((k) => member(world, k, peer.pod)));
  return peerOk && (!rule.ports.length || rule.ports.some((p) => portMatches(p, protocol, port, destination)));
}

const label = (p: CompiledPolicy, r?: CompiledRule): string => `${p.ref.kind} ${p.ref.namespace ? `${p.ref.namespace}/` : ''}${p.ref.name}${r ? ` ${r.name}` : ''}`;

/** A pod's verdict in one direction: `subject` is the pod the policies apply to, `peer` the other end. */
export function directionVerdict(world: World, direction: Direction, subject: WorldPod, peer: Endpoint, protocol: Protocol, port: number): Verdict {
  const destination = direction === 'Ingress' ? subject : 'pod' in peer ? peer.pod : undefined;
  const applies = (p: CompiledPolicy, tier: Tier): boolean => p.tier === tier && member(world, p.appliedTo, subject);
  const ordered = (tier: Tier): CompiledPolicy[] =>
    world.policies.filter((p) => applies(p, tier)).sort((a, b) => a.priority - b.priority || (a.ref.name < b.ref.name ? -1 : a.ref.name > b.ref.name ? 1 : 0));
  // A tier of ordered rules: the first that matches decides (Pass: the next tier does).
  const tiered = (tier: Tier): Verdict | 'pass' | undefined => {
    for (const p of ordered(tier)) {
      for (const r of p.rules) {
        if (r.direction !== direction || !ruleMatches(world, r, peer, protocol, port, destination)) continue;
        if (r.action === 'Pass') return 'pass';
        return { allowed: r.action === 'Accept', by: label(p, r) };
      }
    }
    return undefined;
  };
  const admin = tiered('Admin');
  if (admin && admin !== 'pass') return admin;
  // NetworkPolicy: isolated pods get what some rule accepts, nothing else; the Baseline tier is not asked.
  const isolating = ordered('NetworkPolicy').filter((p) => p.isolates.includes(direction));
  if (isolating.length) {
    for (const p of isolating) {
      const r = p.rules.find((x) => x.direction === direction && ruleMatches(world, x, peer, protocol, port, destination));
      if (r) return { allowed: true, by: label(p, r) };
    }
    return { allowed: false, by: `isolated by ${isolating.map((p) => label(p)).join(', ')}` };
  }
  const baseline = tiered('Baseline');
  if (baseline && baseline !== 'pass') return baseline;
  return { allowed: true, by: 'default' };
}

/** A connection from `source` to `destination` (its port): both ends' policies must let it through. */
export function connectionVerdict(world: World, source: Endpoint, destination: Endpoint, protocol: Protocol, port: number): Verdict {
  // A pod reaching its own address never leaves it (the kernel loops it back): no policy can see it.
  if (ipOf(source) === ipOf(destination)) return { allowed: true, by: 'loopback' };
  if ('pod' in source) {
    const egress = directionVerdict(world, 'Egress', source.pod, destination, protocol, port);
    if (!egress.allowed) return egress;
  }
  if ('pod' in destination) return directionVerdict(world, 'Ingress', destination.pod, source, protocol, port);
  return { allowed: true, by: 'default' };
}
