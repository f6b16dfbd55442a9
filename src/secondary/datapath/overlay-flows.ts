import { CookieOwner, makeCookie, objectSelector, type CookieSelector } from '../../ovs/openflow/cookie.js';
import type { Action } from '../../ovs/openflow/actions.js';
import type { Flow } from '../../ovs/openflow/flow.js';

/**
 * The OpenFlow pipeline of an overlay bridge (one bridge per VNI). No NORMAL action: the tunnels form a
 * full mesh, so flooding must follow split horizon or broadcasts would circle between nodes.
 *
 *   table 0  Classifier  learn the source MAC (table 10), mark frames from tunnels (reg0[0]),
 *                        look the destination up (table 10), forward (table 20). Anything else drops:
 *                        the bridge's own port, multicast source MACs.
 *   table 10 MacTable    learned only: dl_dst -> reg1[0..15] = port, reg1[16] = port is a tunnel.
 *   table 11 Policy      on to forwarding; MultiNetworkPolicy takes the bridge's IP through its tables
 *                        here (priority above 0) when it has something to enforce on the VNI.
 *   table 20 Forward     unknown/broadcast (reg1[0..15] == 0): from a pod -> every other pod + every
 *                        tunnel; from a tunnel -> pods only. Known: output to the learned port, except
 *                        tunnel to tunnel (never relayed between peers).
 */
export const OverlayTable = {
  Classifier: 0,
  MacTable: 10,
  /** The seam of the policy pipeline (src/policy/datapath/secondary.ts): its own tables 11..19 sit between. */
  Policy: 11,
  Forward: 20,
} as const;

/** Learned entries age out after this long without traffic from their MAC (OVS's own mac-aging default). */
export const MAC_IDLE_TIMEOUT_S = 300;

// Cookie object ids: bits 32..39 give the kind, so learned entries stay outside the static flows' sync scope.
const KIND_SHIFT = 32n;
const KIND_MASK = 0xffn << KIND_SHIFT;
const KIND_STATIC = 0n;
const KIND_LEARNED = 1n;

/** Static flows: base flows have object 0, per-port flows the port's ofport. */
function staticObject(ofport = 0): bigint {
  return (KIND_STATIC << KIND_SHIFT) | BigInt(ofport);
}

/** Learned entries carry the ofport they were learned on, so a removed port's entries can be deleted. */
export function learnedObject(ofport: number): bigint {
  return (KIND_LEARNED << KIND_SHIFT) | BigInt(ofport);
}

const OWNER_SHIFT = 56n;
const OWNER_MASK = 0xffn << OWNER_SHIFT;

/** Every static overlay flow of any round: the scope of FlowWriter.sync (learned entries are not in it). */
export const OVERLAY_SYNC_SCOPE: CookieSelector = {
  value: (BigInt(CookieOwner.secondary) << OWNER_SHIFT) | (KIND_STATIC << KIND_SHIFT),
  mask: OWNER_MASK | KIND_MASK,
};

/** Learned entries pointing at one port, any round. */
export function learnedScope(ofport: number): CookieSelector {
  return objectSelector(CookieOwner.secondary, learnedObject(ofport));
}

export interface OverlayBridgeState {
  round: number;
  /** OpenFlow ports of the pod interfaces on the bridge. */
  localPorts: readonly number[];
  /** OpenFlow ports of the VXLAN tunnels to peers. */
  tunnelPorts: readonly number[];
}

const MULTICAST = '01:00:00:00:00:00/01:00:00:00:00:00';
const FROM_TUNNEL = { value: 1, mask: 1 };
const LEARNED_TUNNEL = 0x10000;

function learn(cookie: bigint, fromTunnel: boolean): Action {
  return {
    type: 'learn',
    table: OverlayTable.MacTable,
    idleTimeout: MAC_IDLE_TIMEOUT_S,
    priority: 100,
    cookie,
    specs: [
      { match: 'NXM_OF_ETH_DST[]', from: 'NXM_OF_ETH_SRC[]' },
      { load: 'NXM_NX_REG1[0..15]', from: 'NXM_OF_IN_PORT[]' },
      ...(fromTunnel ? [{ load: 'NXM_NX_REG1[16]', from: { value: 1 } }] : []),
    ],
  };
}

const sorted = (ports: readonly number[]): number[] => [...new Set(ports)].filter((p) => p > 0).sort((a, b) => a - b);

/** The static flows of one overlay bridge for its current ports. */
export function overlayFlows(s: OverlayBridgeState): Flow[] {
  const cookie = (ofport = 0): bigint => makeCookie(CookieOwner.secondary, s.round, staticObject(ofport));
  const local = sorted(s.localPorts);
  const tunnels = sorted(s.tunnelPorts);
  const out = (ports: number[]): Action[] => ports.map((port) => ({ type: 'output', port }));
  const lookupAndForward: Action[] = [
    { type: 'resubmit', table: OverlayTable.MacTable },
    { type: 'goto_table', table: OverlayTable.Policy },
  ];
  const flows: Flow[] = [
    { table: OverlayTable.Classifier, priority: 0, cookie: cookie(), actions: [] },
    { table: OverlayTable.Classifier, priority: 300, cookie: cookie(), match: { dl_src: MULTICAST }, actions: [] },
    { table: OverlayTable.Policy, priority: 0, cookie: cookie(), actions: [{ type: 'goto_table', table: OverlayTable.Forward }] },
    // Known destination: the learned port (output to the ingress port is dropped by OVS itself).
    { table: OverlayTable.Forward, priority: 100, cookie: cookie(), actions: [{ type: 'output', port: { field: 'reg1[0..15]' } }] },
    // Split horizon for unicast: a frame from one peer is never sent on to another.
    { table: OverlayTable.Forward, priority: 300, cookie: cookie(), match: { reg0: FROM_TUNNEL, reg1: { value: LEARNED_TUNNEL, mask: LEARNED_TUNNEL } }, actions: [] },
    // Flooding (broadcast, multicast, unknown unicast) with split horizon.
    { table: OverlayTable.Forward, priority: 200, cookie: cookie(), match: { reg0: { value: 0, mask: 1 }, reg1: { value: 0, mask: 0xffff } }, actions: out([...local, ...tunnels]) },
    { table: OverlayTable.Forward, priority: 200, cookie: cookie(), match: { reg0: FROM_TUNNEL, reg1: { value: 0, mask: 0xffff } }, actions: out(local) },
  ];
  for (const p of local) {
    flows.push({
      table: OverlayTable.Classifier,
      priority: 100,
      cookie: cookie(p),
      match: { in_port: p },
      actions: [learn(makeCookie(CookieOwner.secondary, s.round, learnedObject(p)), false), ...lookupAndForward],
    });
  }
  for (const t of tunnels) {
    flows.push({
      table: OverlayTable.Classifier,
      priority: 100,
      cookie: cookie(t),
      match: { in_port: t },
      actions: [learn(makeCookie(CookieOwner.secondary, s.round, learnedObject(t)), true), { type: 'load', value: 1, dst: 'reg0[0]' }, ...lookupAndForward],
    });
  }
  return flows;
}
