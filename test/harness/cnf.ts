// CNF pods for service-chain tests. nftables inside each CNF marks what it forwards (DSCP) and records what it
// carried: counters per direction, and the connections it saw in each direction (client address . client port),
// so a test reads from inside every replica which connections went through it, both ways.
import type { V1Pod } from '@kubernetes/client-node';
import { run } from '../../src/host/exec.js';
import { PROBE_SRC } from '../../src/chaining/datapath/flows.js';

export type NftFamily = 'bridge' | 'ip';

export interface CnfMarking {
  /** `bridge` for a Transparent CNF (a Linux bridge between its interfaces), `ip` for a Routed one. */
  family: NftFamily;
  /** The chained service port (destination port of the forward direction). */
  port: number;
  /** DSCP the CNF sets on forward packets. */
  mark: number;
  /** Forward packets without this DSCP are dropped (and counted in `c_drop`): the hop before must have run. */
  requires?: number;
}

/** The table every CNF ruleset lives in. */
export const CNF_TABLE = 'cnf';

/**
 * The CNF's ruleset. Counters: c_tcp (every TCP packet it forwards, any port), c_fw / c_rv (the service port,
 * forward / reverse), c_drop (wrong mark). Sets conns_fw / conns_rv: the client side (address . port) of every
 * connection seen in each direction. Seine's forwarding probes (UDP from PROBE_SRC) pass untouched and uncounted.
 */
export function cnfRuleset(m: CnfMarking): string {
  return [
    `table ${m.family} ${CNF_TABLE} {`,
    '  set conns_fw { type ipv4_addr . inet_service; flags dynamic; size 65535; }',
    '  set conns_rv { type ipv4_addr . inet_service; flags dynamic; size 65535; }',
    '  counter c_tcp {}',
    '  counter c_fw {}',
    '  counter c_rv {}',
    '  counter c_drop {}',
    '  chain steer {',
    '    type filter hook forward priority 0;',
    `    ip saddr ${PROBE_SRC} accept`,
    '    ip protocol tcp counter name c_tcp',
    ...(m.requires === undefined ? [] : [`    tcp dport ${m.port} ip dscp != ${m.requires} counter name c_drop drop`]),
    `    tcp dport ${m.port} counter name c_fw add @conns_fw { ip saddr . tcp sport } ip dscp set ${m.mark}`,
    `    tcp sport ${m.port} counter name c_rv add @conns_rv { ip daddr . tcp dport }`,
    '  }',
    '}',
  ].join('\n');
}

/**
 * A CNF pod pinned to `node`: its function interfaces from the networks annotation, then (Transparent) a bridge
 * between them or (Routed) IP forwarding, then the ruleset. Seine prepares a Routed CNF's routes itself.
 */
export function cnfPod(opts: { name: string; node: string; labels: Record<string, string>; networks: string; marking: CnfMarking; interfaces: string[] }): V1Pod {
  const setup =
    opts.marking.family === 'bridge'
      ? `ip link add br0 type bridge && ${opts.interfaces.map((i) => `ip link set ${i} master br0`).join(' && ')} && ip link set br0 up`
      : 'sysctl -qw net.ipv4.ip_forward=1';
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: opts.name, labels: opts.labels, annotations: { 'k8s.v1.cni.cncf.io/networks': opts.networks } },
    spec: {
      nodeName: opts.node,
      containers: [{ name: 'cnf', image: 'lab', env: [{ name: 'RULES', value: cnfRuleset(opts.marking) }], command: ['sh', '-c', `${setup} && printf '%s\\n' "$RULES" | nft -f - && exec sleep infinity`] }],
    },
  };
}

export interface NftCounter {
  packets: number;
  bytes: number;
}

/** The named counters of a table (by default the CNF's), by name. */
export async function cnfCounters(netns: string, family: NftFamily, table = CNF_TABLE): Promise<Record<string, NftCounter>> {
  const { stdout } = await run('nft', ['-j', 'list', 'counters', 'table', family, table], { netns });
  const out: Record<string, NftCounter> = {};
  for (const o of (JSON.parse(stdout) as { nftables: Array<{ counter?: { name: string; packets: number; bytes: number } }> }).nftables) {
    if (o.counter) out[o.counter.name] = { packets: o.counter.packets, bytes: o.counter.bytes };
  }
  return out;
}

/** The connections in one of the CNF's sets, as "address:port" of the client side. */
export async function cnfConnections(netns: string, family: NftFamily, set: 'conns_fw' | 'conns_rv'): Promise<Set<string>> {
  const { stdout } = await run('nft', ['-j', 'list', 'set', family, CNF_TABLE, set], { netns });
  type Concat = { concat: [string, number] };
  type Elem = Concat | { elem: { val: Concat } };
  const out = new Set<string>();
  for (const o of (JSON.parse(stdout) as { nftables: Array<{ set?: { elem?: Elem[] } }> }).nftables) {
    for (const e of o.set?.elem ?? []) {
      const [ip, port] = ('elem' in e ? e.elem.val : e).concat;
      out.add(`${ip}:${port}`);
    }
  }
  return out;
}

/** A hop of a test chain: its CNFs' interfaces and marking, and where each replica runs. */
export interface HopPlan {
  name: string;
  mode: 'Transparent' | 'Routed';
  interfaces: string[];
  marking: CnfMarking;
  /** Replica pod name -> node position. */
  replicas: Array<[string, number]>;
}

/**
 * The end-to-end tests' chain for service `port`: a Transparent firewall (DSCP 8), a Routed router (16, only after
 * 8) and a one-armed Routed inspector (24, only after 16), 2 replicas each on different nodes of 3.
 */
export function threeHops(port: number): HopPlan[] {
  return [
    { name: 'firewall', mode: 'Transparent', interfaces: ['in0', 'out0'], marking: { family: 'bridge', port, mark: 8 }, replicas: [['firewall-1', 0], ['firewall-2', 1]] },
    { name: 'router', mode: 'Routed', interfaces: ['in0', 'out0'], marking: { family: 'ip', port, requires: 8, mark: 16 }, replicas: [['router-1', 1], ['router-2', 2]] },
    { name: 'inspector', mode: 'Routed', interfaces: ['arm0'], marking: { family: 'ip', port, requires: 16, mark: 24 }, replicas: [['inspector-1', 1], ['inspector-2', 2]] },
  ];
}
