import { CookieOwner, makeCookie, ownerSelector, type CookieSelector } from '../../ovs/openflow/cookie.js';
import type { InstalledFlow } from '../../ovs/openflow/dump.js';
import type { Change, Flow } from '../../ovs/openflow/flow.js';

/**
 * The flows of a VLAN trunk bridge that has (or had) function ports. Such a bridge runs in fail_mode secure:
 * in standalone mode OVS's own NORMAL flow would flood into the CNF's ports and learn MACs from them, and a
 * Transparent CNF (a Linux bridge between two function ports) would loop every broadcast back.
 *
 *   table 0  priority 100  in_port=<function port> -> drop: nothing a CNF sends reaches NORMAL (no learning)
 *            priority 0    NORMAL: learning and VLAN switching as in standalone mode; function ports are
 *                          configured no-flood (OpenFlow port config), so NORMAL never floods into them
 *
 * Service chain flows (owner chaining) sit above, at priorities 200..250 of table 0 and in tables 65..70.
 * A trunk bridge without function ports stays standalone with OVS's NORMAL flow: no flow of Seine's there.
 */
export const TrunkPriority = {
  Normal: 0,
  FunctionDrop: 100,
} as const;

/** Every flow the secondary datapath owns on a trunk bridge, any round: the scope of FlowWriter.sync. */
export const TRUNK_SYNC_SCOPE: CookieSelector = ownerSelector(CookieOwner.secondary);

export interface TrunkBridgeState {
  round: number;
  /** OpenFlow ports of the function ports on the bridge. */
  functionPorts: readonly number[];
}

/** The flows of a secure trunk bridge for its current function ports (cookie object: 0 base, else the ofport). */
export function trunkFlows(s: TrunkBridgeState): Flow[] {
  const cookie = (ofport = 0): bigint => makeCookie(CookieOwner.secondary, s.round, ofport);
  const ports = [...new Set(s.functionPorts)].filter((p) => p > 0).sort((a, b) => a - b);
  return [
    { table: 0, priority: TrunkPriority.Normal, cookie: cookie(), actions: [{ type: 'output', port: 'NORMAL' }] },
    ...ports.map((p): Flow => ({ table: 0, priority: TrunkPriority.FunctionDrop, cookie: cookie(p), match: { in_port: p }, actions: [] })),
  ];
}

/**
 * Whether a flow is the one ovs-vswitchd itself installs on a standalone bridge without controller
 * (table 0, priority 0, match all, NORMAL, cookie 0): it goes with the standalone mode.
 */
function isStandaloneNormal(f: InstalledFlow): boolean {
  return f.cookie === 0n && f.table === 0 && f.priority === 0 && f.match === '' && f.actions === 'NORMAL';
}

/**
 * Changing a bridge's fail_mode makes ovs-vswitchd flush every flow of it (OVS 3.1, with no controller
 * configured). These are the add changes that put the flows of others (e.g. service chains) back after the
 * change, from a dump taken before it; the standalone NORMAL flow and flows under `own` are left out.
 */
export function reinstallChanges(installed: readonly InstalledFlow[], own: CookieSelector): Change[] {
  return installed
    .filter((f) => !isStandaloneNormal(f) && (f.cookie & own.mask) !== (own.value & own.mask))
    .map((f) => {
      const parts = [`table=${f.table}`, `priority=${f.priority}`, `cookie=0x${f.cookie.toString(16)}`];
      if (f.idleTimeout) parts.push(`idle_timeout=${f.idleTimeout}`);
      if (f.hardTimeout) parts.push(`hard_timeout=${f.hardTimeout}`);
      if (f.importance) parts.push(`importance=${f.importance}`);
      parts.push(...f.flags);
      if (f.match) parts.push(f.match);
      parts.push(`actions=${f.actions}`);
      return { kind: 'flow', op: 'add', line: parts.join(','), table: f.table, priority: f.priority } satisfies Change;
    });
}

/**
 * The OpenFlow port numbers that `ovs-ofctl -O OpenFlow10 show` lists with the port config NO_FLOOD. Its port
 * blocks start with ` <ofport>(<name>): addr:...`, followed by indented `config:` and `state:` lines.
 */
export function noFloodPorts(show: string): Set<number> {
  const out = new Set<number>();
  let port: number | undefined;
  for (const line of show.split('\n')) {
    const head = /^\s*(\d+|LOCAL)\([^)]*\):/.exec(line);
    if (head) port = head[1] === 'LOCAL' ? undefined : Number(head[1]);
    const config = /^\s+config:\s+(.*)$/.exec(line);
    if (config && port !== undefined && config[1]!.split(/\s+/).includes('NO_FLOOD')) out.add(port);
  }
  return out;
}
