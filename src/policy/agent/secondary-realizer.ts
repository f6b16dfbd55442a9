// MultiNetworkPolicy on this node's secondary bridges: the share's policies of secondary networks resolved against
// the pod ports of Seine's VLAN and overlay networks, each bridge's pipeline (src/policy/datapath/secondary.ts)
// synced as one bundle of its own. Ports are found in OVSDB by the pod and network they carry, so a restarted agent
// finds them all again.
import { join } from 'node:path';
import { FlowWriter, type InstalledFlow } from '../../ovs/openflow/index.js';
import type { Vswitch } from '../../ovs/ovsdb/index.js';
import { SEC } from '../../secondary/agent/records.js';
import { EXT, OWNER } from '../../secondary/datapath/names.js';
import type { Logger } from '../../util/log.js';
import type { RuleProblem } from '../datapath/flows.js';
import { policyScope } from '../datapath/layout.js';
import { overlayZone, secondaryPolicyFlows, type SecondaryBridgePolicy, type SegmentPort } from '../datapath/secondary.js';
import type { Isolation, DatapathRule } from '../datapath/state.js';
import { networkMemberUid } from '../model/network-uid.js';
import { resolveShare, RuleIds, type NodeShare } from './resolve.js';

/** A pod's port on a secondary network's bridge. */
export interface SecondaryPort {
  bridge: string;
  ofport: number;
  containerId: string;
  /** The pod's entry on the network, as the policy computation names it. */
  member: string;
  network: string;
  mac?: string;
  vlan?: number;
  vni?: number;
}

/** What is installed on one bridge (counters map its rule ids back to rules). */
export interface BridgeRealization {
  ids: RuleIds;
  rules: readonly DatapathRule[];
  isolations: readonly Isolation[];
}

export interface SecondaryRealizeResult {
  /** Flow changes made, over every bridge. */
  changes: number;
  /** Rules the datapath could not express, and networks it cannot enforce here. */
  problems: RuleProblem[];
  /** Policed overlay networks whose conntrack zone another one on this node already has: not enforced here. */
  zoneClashes: Array<{ network: string; other: string }>;
}

export class SecondaryPolicyRealizer {
  private readonly writers = new Map<string, FlowWriter>();
  private readonly ids = new Map<string, RuleIds>();
  /** Per bridge: the flows' JSON last synced (absent: sync whatever it is). */
  private readonly installed = new Map<string, string>();
  readonly current = new Map<string, BridgeRealization>();

  constructor(
    private readonly opts: { vswitch: Vswitch; rundir: string; round: number; log: Logger },
  ) {}

  /** Every pod port on a VLAN or overlay network's bridge, leaving sandboxes left out. */
  ports(leaving: ReadonlySet<string>): SecondaryPort[] {
    const cache = this.opts.vswitch.cache;
    const out: SecondaryPort[] = [];
    for (const p of cache.findPorts({ [EXT.owner]: OWNER.pod })) {
      const x = p.externalIds;
      const type = x[EXT.networkType];
      if ((type !== 'vlan' && type !== 'overlay') || !x[SEC.podUid] || !x[SEC.network]) continue;
      const ofport = cache.iface(p.name)?.ofport;
      const containerId = x[SEC.containerId] ?? '';
      const bridge = cache.bridgeOf(p.name)?.name ?? x[EXT.bridge];
      if (!bridge || ofport === undefined || ofport <= 0 || leaving.has(containerId)) continue;
      out.push({
        bridge,
        ofport,
        containerId,
        member: networkMemberUid(x[SEC.podUid]!, x[SEC.network]!),
        network: x[SEC.network]!,
        ...(x[EXT.mac] ? { mac: x[EXT.mac] } : {}),
        ...(type === 'vlan' && x[EXT.vlan] ? { vlan: Number(x[EXT.vlan]) } : {}),
        ...(type === 'overlay' && x[EXT.vni] ? { vni: Number(x[EXT.vni]) } : {}),
      });
    }
    return out;
  }

  /** Forgets what was installed: the next realize syncs every bridge (after ovs-vswitchd lost the flows). */
  reset(): void {
    this.installed.clear();
  }

  async realize(share: NodeShare, leaving: ReadonlySet<string>): Promise<SecondaryRealizeResult> {
    const result: SecondaryRealizeResult = { changes: 0, problems: [], zoneClashes: [] };
    const byBridge = new Map<string, SecondaryPort[]>();
    for (const p of this.ports(leaving)) byBridge.set(p.bridge, [...(byBridge.get(p.bridge) ?? []), p]);
    // Every secondary bridge, also one without pod ports: a previous run's flows there go too.
    const secondaryBridges = this.opts.vswitch.cache.bridges().filter((b) => b.externalIds[EXT.owner] === OWNER.bridge).map((b) => b.name);
    const bridges = new Set([...secondaryBridges, ...byBridge.keys(), ...this.installed.keys(), ...this.current.keys()]);
    const zones = new Map<number, string>();
    for (const bridge of [...bridges].sort()) {
      if (!this.opts.vswitch.cache.bridge(bridge)) {
        // The bridge is gone (its last attachment left): so are its flows.
        this.forget(bridge);
        continue;
      }
      const ports = byBridge.get(bridge) ?? [];
      let ids = this.ids.get(bridge);
      if (!ids) this.ids.set(bridge, (ids = new RuleIds()));
      const state = resolveShare(share, (member) => ports.filter((p) => p.member === member).map((p) => p.ofport), ids, this.opts.round);
      const policed = new Set([...state.rules.flatMap((r) => r.applied.map((a) => a.ofport)), ...state.isolations.map((i) => i.ofport)]);
      const segmentPort = (p: SecondaryPort): SegmentPort => ({ ofport: p.ofport, ...(p.mac ? { mac: p.mac } : {}) });
      let desired: SecondaryBridgePolicy;
      const overlay = ports.find((p) => p.vni !== undefined);
      if (overlay) {
        const zone = overlayZone(overlay.vni!);
        const other = zones.get(zone);
        if (other !== undefined && policed.size) {
          result.zoneClashes.push({ network: overlay.network, other });
          desired = { kind: 'overlay', round: this.opts.round, zone, ports: [], rules: [], isolations: [] };
        } else {
          if (policed.size) zones.set(zone, overlay.network);
          desired = { kind: 'overlay', round: this.opts.round, zone, ports: ports.map(segmentPort), rules: state.rules, isolations: state.isolations };
        }
      } else {
        // A VLAN is policed when a port of it is; every pod port of that VLAN goes through its pipeline.
        const vlans = new Set(ports.filter((p) => policed.has(p.ofport) && p.vlan !== undefined).map((p) => p.vlan!));
        const segments = [...vlans].map((vlan) => ({ vlan, ports: ports.filter((p) => p.vlan === vlan).map(segmentPort) }));
        desired = { kind: 'trunk', round: this.opts.round, segments, rules: state.rules, isolations: state.isolations };
      }
      const problems: RuleProblem[] = [];
      const flows = secondaryPolicyFlows(desired, problems);
      result.problems.push(...problems);
      const text = JSON.stringify(flows, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
      if (this.installed.get(bridge) === text) {
        this.current.set(bridge, { ids, rules: desired.rules, isolations: desired.isolations });
        continue;
      }
      const synced = await this.writer(bridge).sync({ cookie: policyScope(), flows });
      result.changes += synced.changes.length;
      this.installed.set(bridge, text);
      if (flows.length) this.current.set(bridge, { ids, rules: desired.rules, isolations: desired.isolations });
      else this.current.delete(bridge);
      this.opts.log.info({ bridge, rules: desired.rules.length, isolations: desired.isolations.length, flows: flows.length, changes: synced.changes.length }, 'secondary network policy flows synced');
    }
    return result;
  }

  /** The policy flows of the bridges `wanted` names, with their statistics (for the rule counters). */
  async dumpFlows(wanted: (bridge: string) => boolean = () => true): Promise<Array<{ bridge: string; flows: InstalledFlow[] }>> {
    const out: Array<{ bridge: string; flows: InstalledFlow[] }> = [];
    for (const bridge of [...this.current.keys()].filter(wanted)) {
      try {
        out.push({ bridge, flows: await this.writer(bridge).dumpFlows({ cookie: policyScope() }) });
      } catch {
        // The bridge is away (ovs-vswitchd restarting, or the bridge just removed): the next reading.
      }
    }
    return out;
  }

  private forget(bridge: string): void {
    this.installed.delete(bridge);
    this.current.delete(bridge);
    this.ids.delete(bridge);
    this.writers.delete(bridge);
  }

  private writer(bridge: string): FlowWriter {
    let w = this.writers.get(bridge);
    if (!w) {
      w = new FlowWriter({ target: `unix:${join(this.opts.rundir, `${bridge}.mgmt`)}`, bridge });
      this.writers.set(bridge, w);
    }
    return w;
  }
}
