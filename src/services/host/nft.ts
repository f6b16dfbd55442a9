// The nftables side of the node's Service proxy: one table, rendered whole from the state, so one `nft -f -`
// transaction replaces it atomically. Per-Service data lives in named sets (concatenated keys), so the number
// of rules is fixed however many Services there are.
import { NFT_SERVICES_TABLE, NODEPORT_VIRTUAL_IP, RETURN_MARK, type AddressPort, type HostServicesState, type L4Protocol, type NodePortRule } from './state.js';

/** The table's sets: name -> nft key type. */
export const NFT_SETS = {
  /** address . protocol . port of Services without endpoints. */
  serviceRejects: 'service-rejects',
  /** protocol . port of node ports with endpoints: DNATed to the node-port virtual IP. */
  nodePorts: 'nodeports',
  /** protocol . port of node ports without endpoints. */
  nodePortRejects: 'nodeport-rejects',
  /** protocol . port of externalTrafficPolicy Cluster node ports: masqueraded whatever their source. */
  nodePortsMasqueraded: 'nodeports-masqueraded',
  /** address . protocol . port of externalTrafficPolicy Cluster external addresses. */
  externalMasqueraded: 'external-masqueraded',
} as const;

const ADDRESS_PORT_KEY = 'ipv4_addr . inet_proto . inet_service';
const PORT_KEY = 'inet_proto . inet_service';
/** Loopback is no node-port address: kube-proxy's default too, and it would need route_localnet. */
const LOOPBACK = '127.0.0.0/8';

const proto = (p: L4Protocol): string => p.toLowerCase();
const portElement = (n: { protocol: L4Protocol; port: number }): string => `${proto(n.protocol)} . ${n.port}`;
const addressPortElement = (a: AddressPort): string => `${a.ip} . ${proto(a.protocol)} . ${a.port}`;

function set(name: string, type: string, elements: readonly string[]): string[] {
  const sorted = [...new Set(elements)].sort();
  const lines = [`  set ${name} {`, `    type ${type}`];
  if (sorted.length) lines.push(`    elements = {`, ...sorted.map((e, i) => `      ${e}${i < sorted.length - 1 ? ',' : ''}`), '    }');
  lines.push('  }');
  return lines;
}

function chain(name: string, rules: readonly string[], hook?: string): string[] {
  return [`  chain ${name} {`, ...(hook ? [`    ${hook}; policy accept;`] : []), ...rules.map((r) => `    ${r}`), '  }'];
}

/**
 * The whole table for `state` (already normalized), as one nft script: declare, delete and recreate in one
 * transaction. Packets see the old table or the new one, never neither; conntrack keeps the translations of
 * established connections, which live outside the rules.
 */
export function servicesRuleset(state: HostServicesState): string {
  const gw = `"${state.gatewayIf}"`;
  const serving = (n: NodePortRule): boolean => !n.reject;
  const masq = `snat to ${state.gatewayIp}`;
  const localNotLoopback = `fib daddr type local ip daddr != ${LOOPBACK}`;
  const lines = [
    `table ip ${NFT_SERVICES_TABLE} {}`,
    `delete table ip ${NFT_SERVICES_TABLE}`,
    `table ip ${NFT_SERVICES_TABLE} {`,
    ...set(NFT_SETS.serviceRejects, ADDRESS_PORT_KEY, state.rejects.map(addressPortElement)),
    ...set(NFT_SETS.nodePorts, PORT_KEY, state.nodePorts.filter(serving).map(portElement)),
    ...set(NFT_SETS.nodePortRejects, PORT_KEY, state.nodePorts.filter((n) => n.reject).map(portElement)),
    ...set(NFT_SETS.nodePortsMasqueraded, PORT_KEY, state.nodePorts.filter((n) => serving(n) && n.masquerade).map(portElement)),
    ...set(NFT_SETS.externalMasqueraded, ADDRESS_PORT_KEY, state.masqueradeExternal.map(addressPortElement)),
    // Node ports: any local address but loopback, reached from outside, from pods or from the node itself.
    ...chain('nodeport-dnat', [`${localNotLoopback} meta l4proto . th dport @${NFT_SETS.nodePorts} dnat to ${NODEPORT_VIRTUAL_IP}`]),
    ...chain('prerouting', ['jump nodeport-dnat'], 'type nat hook prerouting priority dstnat'),
    ...(state.chained ? chainedReturn(gw) : intoOvsMasquerade(gw, masq)),
    ...chain('reject-unserved', ['meta l4proto tcp reject with tcp reset', 'reject with icmp type port-unreachable']),
    // New connections only, as kube-proxy: packets of a connection made while the Service had endpoints are
    // left to conntrack and the endpoint.
    ...chain('endpoints-check', [
      `ip daddr . meta l4proto . th dport @${NFT_SETS.serviceRejects} goto reject-unserved`,
      `${localNotLoopback} meta l4proto . th dport @${NFT_SETS.nodePortRejects} goto reject-unserved`,
    ]),
    ...chain('input', ['ct state new jump endpoints-check'], 'type filter hook input priority filter'),
    ...chain('forward', ['ct state new jump endpoints-check'], 'type filter hook forward priority filter'),
    ...chain('output', ['ct state new jump endpoints-check'], 'type filter hook output priority filter'),
    '}',
  ];
  return lines.join('\n') + '\n';
}

/**
 * Node-port traffic from pods (hairpin) and from the node must come back through this node's conntrack, as must
 * that of Cluster-policy Services from anywhere: masqueraded to the gateway IP on its way into OVS, whose replies
 * (to the gateway IP, routed to this node) come back through it.
 */
function intoOvsMasquerade(gw: string, masq: string): string[] {
  return [
    // nft 1.0.6 names the dstnat priority only for prerouting; -100 is its value.
    ...chain('output-nat', ['jump nodeport-dnat'], 'type nat hook output priority -100'),
    ...chain(
      'postrouting',
      [
        `oifname != ${gw} return`,
        `ip daddr ${NODEPORT_VIRTUAL_IP} meta l4proto . th dport @${NFT_SETS.nodePortsMasqueraded} ${masq}`,
        `ip daddr ${NODEPORT_VIRTUAL_IP} iifname ${gw} ${masq}`,
        `ip daddr ${NODEPORT_VIRTUAL_IP} fib saddr type local ${masq}`,
        `ip daddr . meta l4proto . th dport @${NFT_SETS.externalMasqueraded} ${masq}`,
      ],
      'type nat hook postrouting priority srcnat',
    ),
  ];
}

/**
 * Chained (HostServicesState.chained): an outside client's connection that OVS sends back toward the network (to
 * an endpoint on another node) is masqueraded on its way out and marked; its replies get the packet mark, which
 * routes them back into OVS (RETURN_TABLE) for the Service's translation, and then the node port's.
 */
function chainedReturn(gw: string): string[] {
  const mark = `0x${RETURN_MARK.toString(16)}`;
  const marked = `ct mark and ${mark} == ${mark}`;
  return [
    ...chain(
      'return-mark',
      [
        // This node's pods are routed through the gateway: their own connections keep their address (fib is not
        // allowed in postrouting, hence the mark here).
        `iifname ${gw} ct state new fib saddr oif != ${gw} ct mark set ct mark or ${mark}`,
        `iifname != ${gw} ${marked} meta mark set meta mark or ${mark}`,
      ],
      'type filter hook prerouting priority mangle',
    ),
    ...chain('return-masquerade', [`iifname ${gw} oifname != ${gw} ${marked} masquerade`], 'type nat hook postrouting priority srcnat'),
  ];
}

/** Removes the table, whether or not it exists. */
export function servicesRulesetRemoval(): string {
  return `table ip ${NFT_SERVICES_TABLE} {}\ndelete table ip ${NFT_SERVICES_TABLE}\n`;
}
