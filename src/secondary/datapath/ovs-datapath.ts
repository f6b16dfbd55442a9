import { join } from 'node:path';
import { Mutex } from 'async-mutex';
import ipaddr from 'ipaddr.js';
import type { PortAdmission } from '../../agent/port-admission.js';
import { run } from '../../host/exec.js';
import { IpBatch, type IpRoute } from '../../host/ip.js';
import { CookieOwner, makeCookie } from '../../ovs/openflow/cookie.js';
import { FlowWriter } from '../../ovs/openflow/writer.js';
import { op, type BridgeRow, type InterfaceRow, type PortRow, type Vswitch } from '../../ovs/ovsdb/index.js';
import { logger } from '../../util/log.js';
import { BRIDGE_NAME_PATTERN, RESERVED_BRIDGES } from '../nad/bridges.js';
import { OverlayTable, OVERLAY_SYNC_SCOPE, learnedScope, overlayFlows } from './overlay-flows.js';
import { noFloodPorts, reinstallChanges, TRUNK_SYNC_SCOPE, trunkFlows } from './trunk-flows.js';
import { checkFunctionAttachment } from './function-ports.js';
import { EXT, MAX_VNI, OVERLAY_VXLAN_PORT, OWNER, POD_EXT, tunnelPortName } from './names.js';
import { setUpSecondaryInterface, tearDownSecondaryInterface, validateInterfaceSpec } from './pod-interface.js';
import type { AttachedInterface, BridgePorts, NetworkRealization, SecondaryAttachment, SecondaryDatapath } from './types.js';

export interface OvsSecondaryDatapathOptions {
  vswitch: Vswitch;
  /** ovs-vswitchd's run directory, where the `<bridge>.mgmt` OpenFlow sockets are. */
  ovsRundir: string;
  /** iproute2 in the node's host namespace (where veth host ends and uplinks live). */
  host: IpRoute;
  /** This node's underlay IP: the tunnels' local_ip, and never a peer. */
  nodeIp: string;
  userspaceDatapath: boolean;
  /** Flow cookie round of this agent run. */
  round: number;
  /** UDP port of the overlay tunnels (default OVERLAY_VXLAN_PORT). */
  vxlanPort?: number;
  /** Gates a new pod port passes, added but with its host end down, before it carries traffic (its policy). */
  admission?: PortAdmission;
}

const PROTOCOLS = ['OpenFlow10', 'OpenFlow13', 'OpenFlow15'] as const;
const RECONFIGURE_TIMEOUT_MS = 30_000;
const BRIDGE_RE = new RegExp(BRIDGE_NAME_PATTERN);

function checkNetwork(net: NetworkRealization): void {
  const bad = (what: string): never => {
    throw new RangeError(`network on bridge ${net.bridge}: ${what}`);
  };
  if (!BRIDGE_RE.test(net.bridge)) bad('invalid bridge name');
  if (net.networkType === 'function') {
    if (net.vlan !== undefined || net.vni !== undefined || net.uplink !== undefined) bad('a function port has no VLAN, VNI or uplink of its own (it takes those of boundTo)');
    const bound = net.boundTo;
    if (!bound) return;
    if (bound.networkType === 'function') bad('a function port is bound to a VLAN or overlay network, not to another function network');
    if (bound.bridge !== net.bridge) bad(`a function port bound to a network goes on its bridge ${bound.bridge}`);
    return checkNetwork(bound);
  }
  if (net.boundTo !== undefined) bad('only function ports are bound to a network');
  if (RESERVED_BRIDGES.includes(net.bridge)) bad('the bridge belongs to the primary network');
  if (net.networkType === 'vlan') {
    if (!Number.isInteger(net.vlan) || net.vlan! < 1 || net.vlan! > 4094) bad(`VLAN ${net.vlan} outside 1..4094`);
    if (net.uplink !== undefined && (!net.uplink || Buffer.byteLength(net.uplink) > 15 || /[/:\s]/.test(net.uplink))) bad(`invalid uplink "${net.uplink}"`);
  } else if (net.networkType === 'overlay') {
    if (!Number.isInteger(net.vni) || net.vni! < 1 || net.vni! > MAX_VNI) bad(`VNI ${net.vni} outside 1..${MAX_VNI}`);
  } else {
    bad(`unknown network type ${String((net as { networkType: unknown }).networkType)}`);
  }
}

/** What a bridge is converged for: VLAN networks share their trunk bridge whatever the VLAN (the uplink matters), an overlay bridge is one VNI's. */
function bridgeRealizationKey(net: NetworkRealization): string {
  return net.networkType === 'vlan' ? `vlan uplink=${net.uplink ?? ''}` : `overlay vni=${net.vni}`;
}

function normalizeIp(s: string): string {
  if (!ipaddr.isValid(s)) throw new RangeError(`invalid IP address ${s}`);
  return ipaddr.process(s).toString();
}

/**
 * Seine's secondary networks on Open vSwitch, one node.
 *
 * - VLAN: a shared trunk bridge (fail_mode standalone, NORMAL switching), pod ports are access ports tagged
 *   with the VLAN, the uplink is a trunk. With one uplink and only access ports there is no loop to avoid.
 * - Overlay: a bridge per VNI (fail_mode secure) with a VXLAN port per peer node that has pods on the VNI
 *   (key = VNI, UDP OVERLAY_VXLAN_PORT) and the explicit learning/split-horizon pipeline of overlay-flows.ts.
 * - Function (CNF ports of service chains): unbound, a port on the pod network's bridge with no tag and no
 *   flow; that bridge's table-miss drops what it sends until a chain steers through it (function-ports.ts).
 *   Bound to a VLAN network, an access port of its VLAN on the trunk bridge, which turns fail_mode secure for
 *   good with flows that keep NORMAL away from function ports (trunk-flows.ts); bound to an overlay network,
 *   a port of the VNI's bridge that is no flooding target and whose frames the table-miss drops.
 *
 * OVSDB is the state: pod ports carry their attachment in external_ids, tunnel ports their peer, bridges
 * their network, so a new instance (agent restart) finds everything. Only the peer lists live in memory;
 * until they are set again, existing tunnels are kept.
 */
export class OvsSecondaryDatapath implements SecondaryDatapath {
  private readonly log = logger('secondary-datapath');
  private readonly vs: Vswitch;
  private readonly host: IpRoute;
  private readonly nodeIp: string;
  private readonly userspace: boolean;
  private readonly round: number;
  private readonly rundir: string;
  private readonly vxlanPort: number;
  private readonly admission?: PortAdmission;
  private readonly writers = new Map<string, FlowWriter>();
  private readonly locks = new Map<string, Mutex>();
  /** Peer node IPs per VNI, as last set. */
  private readonly peers = new Map<number, string[]>();
  /** Bridges converged by this instance, with what they were converged for (bridgeRealizationKey). */
  private readonly ensured = new Map<string, string>();

  constructor(opts: OvsSecondaryDatapathOptions) {
    makeCookie(CookieOwner.secondary, opts.round); // validates the round
    this.vs = opts.vswitch;
    this.host = opts.host;
    this.nodeIp = normalizeIp(opts.nodeIp);
    this.userspace = opts.userspaceDatapath;
    this.round = opts.round;
    this.rundir = opts.ovsRundir;
    this.vxlanPort = opts.vxlanPort ?? OVERLAY_VXLAN_PORT;
    this.admission = opts.admission;
  }

  private get datapathType(): string {
    return this.userspace ? 'netdev' : 'system';
  }

  /** The OpenFlow writer of a bridge (one per bridge: FlowWriter serialises per target). */
  writer(bridge: string): FlowWriter {
    let w = this.writers.get(bridge);
    if (!w) {
      w = new FlowWriter({ target: `unix:${join(this.rundir, `${bridge}.mgmt`)}`, bridge });
      this.writers.set(bridge, w);
    }
    return w;
  }

  /** Changes of one bridge (its ports, tunnels, flows) happen one at a time. */
  private locked<T>(bridge: string, fn: () => Promise<T>): Promise<T> {
    let m = this.locks.get(bridge);
    if (!m) {
      m = new Mutex();
      this.locks.set(bridge, m);
    }
    return m.runExclusive(fn);
  }

  async ensureNetwork(net: NetworkRealization): Promise<void> {
    checkNetwork(net);
    if (net.networkType === 'function') {
      if (!net.boundTo) return this.checkFunctionBridge(net.bridge);
      // The bound network exactly as its own attachments ensure it; a trunk bridge also turns secure now.
      await this.ensureNetwork(net.boundTo);
      if (net.boundTo.networkType === 'vlan') await this.locked(net.bridge, () => this.secureTrunk(net.bridge));
      return;
    }
    // The agent ensures the network before every attachment. Converging a bridge that this instance already
    // converged for the same realization would change nothing, yet costs an OVSDB transaction and, for VLAN, five
    // host commands (uplink checks), for an overlay a flow sync, all under the bridge's lock: with dozens of
    // concurrent ADDs on a node that serialised work made ADDs time out (45 s). Still checked: the bridge and
    // the uplink port are in place (the cache follows OVSDB) and the bridge carries this network.
    const key = bridgeRealizationKey(net);
    const existing = this.vs.cache.bridge(net.bridge);
    if (existing && this.ensured.get(net.bridge) === key && (net.networkType !== 'vlan' || !net.uplink || this.vs.cache.bridgeOf(net.uplink)?.name === net.bridge)) {
      this.checkBridgeUse(net, existing);
      return;
    }
    await this.locked(net.bridge, async () => {
      await (net.networkType === 'vlan' ? this.ensureVlanBridge(net) : this.ensureOverlayBridge(net));
      this.ensured.set(net.bridge, key);
    });
  }

  /**
   * An unbound function port goes on a bridge someone else made and programs (the pod network's br-int):
   * this neither creates nor converges it, and installs no flow there.
   */
  private checkFunctionBridge(bridge: string): void {
    const b = this.vs.cache.bridge(bridge);
    if (!b) throw new Error(`bridge ${bridge} for function ports does not exist (the pod network makes it)`);
    if (b.externalIds[EXT.owner] === OWNER.bridge) throw new Error(`bridge ${bridge} is a secondary network's: a function port there must be bound to that network (boundTo)`);
  }

  /** Refuses a bridge that exists for something else: not a secondary bridge, another type or VNI. */
  private checkBridgeUse(net: NetworkRealization, b: BridgeRow | undefined): void {
    if (!b) return;
    const ids = b.externalIds;
    if (ids[EXT.owner] !== OWNER.bridge) throw new Error(`bridge ${b.name} exists and is not a Seine secondary network's`);
    if (ids[EXT.networkType] !== net.networkType) throw new Error(`bridge ${b.name} carries a ${ids[EXT.networkType]} network, not ${net.networkType}`);
    if (net.networkType === 'overlay' && ids[EXT.vni] !== String(net.vni)) throw new Error(`bridge ${b.name} carries VNI ${ids[EXT.vni]}, not ${net.vni}`);
  }

  private async ensureVlanBridge(net: NetworkRealization): Promise<void> {
    const bridge = net.bridge;
    const existing = this.vs.cache.bridge(bridge);
    this.checkBridgeUse(net, existing);
    // A trunk bridge that has had function ports stays secure (see secureTrunk): back to standalone would
    // flood into them again.
    const secure = existing?.failMode === 'secure';
    await this.vs.ensureBridge(bridge, {
      datapathType: this.datapathType,
      protocols: PROTOCOLS,
      failMode: secure ? 'secure' : 'standalone',
      externalIds: { [EXT.owner]: OWNER.bridge, [EXT.networkType]: 'vlan' },
      otherConfig: { 'disable-in-band': 'true' },
    });
    for (const p of this.vs.cache.portsOf(bridge)) {
      if (p.externalIds[EXT.owner] === OWNER.uplink && p.name !== net.uplink) {
        this.log.info({ bridge, uplink: p.name }, 'removing an uplink no longer configured');
        await this.removePort(p.name);
      }
    }
    if (net.uplink) await this.ensureUplink(bridge, net.uplink);
    if (secure) await this.convergeTrunk(bridge);
  }

  /**
   * Makes a trunk bridge ready for function ports (caller holds its lock): fail_mode secure, so that only
   * the flows of trunk-flows.ts switch it. ovs-vswitchd flushes every flow of a bridge whose fail_mode
   * changes, so the flows of others (service chains) are read before and put back after, and the bridge
   * forwards nothing between the change and our NORMAL flow.
   */
  private async secureTrunk(bridge: string): Promise<void> {
    // Secure already: its flows were converged when it turned secure, by ensureVlanBridge or by restore().
    if (this.vs.cache.bridge(bridge)?.failMode === 'secure') return;
    const w = this.writer(bridge);
    const others = reinstallChanges(await w.dumpFlows(), TRUNK_SYNC_SCOPE);
    await this.vs.ensureBridge(bridge, { failMode: 'secure' });
    try {
      await this.vs.cache.waitUntil((c) => (c.bridge(bridge)?.failMode === 'secure' ? true : undefined), {
        timeoutMs: RECONFIGURE_TIMEOUT_MS,
        description: `bridge ${bridge} in fail_mode secure`,
      });
      // Once ovs-vswitchd applied the change it has flushed the flows: what is added now stays.
      await this.waitReconfigured();
      await this.convergeTrunk(bridge);
      if (others.length) await w.submit(others);
    } catch (e) {
      // Secure without its flows: the next ensureNetwork converges the bridge again instead of trusting it.
      this.ensured.delete(bridge);
      throw e;
    }
    this.log.info({ bridge, reinstalled: others.length }, 'trunk bridge switched to fail_mode secure for function ports');
  }

  /**
   * The function ports of a secure trunk bridge and its flows (caller holds its lock): first no-flood on every
   * function port (after an ovs-vswitchd restart the bridge forwards nothing until then), then the flows.
   */
  private async convergeTrunk(bridge: string): Promise<void> {
    const ofports = this.functionPortsOn(bridge).flatMap((p) => this.ofport(p.name) ?? []);
    if (ofports.length) {
      const set = noFloodPorts(await this.ofctl10(bridge, 'show'));
      for (const ofport of ofports.filter((o) => !set.has(o))) await this.ofctl10(bridge, 'mod-port', String(ofport), 'no-flood');
    }
    await this.writer(bridge).sync({ cookie: TRUNK_SYNC_SCOPE, flows: trunkFlows({ round: this.round, functionPorts: ofports }) });
  }

  /**
   * ovs-ofctl in OpenFlow 1.0, the only version with the port config no-flood (NORMAL and FLOOD then never send
   * to the port; ovs-vswitchd keeps it until it restarts or the port is re-created).
   */
  private async ofctl10(bridge: string, command: string, ...args: string[]): Promise<string> {
    const { stdout } = await run('ovs-ofctl', ['-O', 'OpenFlow10', command, this.writer(bridge).ofctl.target, ...args], { timeoutMs: RECONFIGURE_TIMEOUT_MS });
    return stdout;
  }

  private async ensureUplink(bridge: string, uplink: string): Promise<void> {
    const link = await this.host.link(uplink);
    if (!link) throw new Error(`uplink ${uplink} of bridge ${bridge} does not exist`);
    const holder = this.vs.cache.bridgeOf(uplink);
    if (holder && holder.name !== bridge) throw new Error(`uplink ${uplink} is already a port of bridge ${holder.name}`);
    if (holder && this.vs.cache.port(uplink)?.externalIds[EXT.owner] !== OWNER.uplink) throw new Error(`${uplink} is a port of ${bridge} that is not its uplink`);
    // A trunk NIC carries the fabric's VLANs, not the host's traffic: taking one with addresses would cut the node off.
    const [addrs] = await this.host.addrs(uplink);
    const inUse = addrs?.addr_info.filter((a) => a.family === 'inet' || a.scope === 'global') ?? [];
    if (inUse.length) throw new Error(`uplink ${uplink} has addresses (${inUse.map((a) => `${a.local}/${a.prefixlen}`).join(', ')}): not a trunk for secondary networks`);
    if (this.userspace) {
      // OVS reads the uplink through AF_PACKET; the kernel must neither answer nor route what it sees there.
      await this.host.txOffloadOff(uplink);
      await this.host.isolateFromHostStack(uplink);
    }
    await this.host.apply(new IpBatch().setLink(uplink, { up: true }));
    if (!holder) {
      await this.vs.addPort(bridge, { name: uplink, vlanMode: 'trunk', externalIds: { [EXT.owner]: OWNER.uplink, [EXT.bridge]: bridge } });
      this.log.info({ bridge, uplink }, 'uplink added');
    }
  }

  private async ensureOverlayBridge(net: NetworkRealization): Promise<void> {
    const existed = !!this.vs.cache.bridge(net.bridge);
    this.checkBridgeUse(net, this.vs.cache.bridge(net.bridge));
    // One segment per VNI: a second bridge would receive the same tunnel key and want the same tunnel port names.
    const other = this.overlayBridges().find((b) => b.name !== net.bridge && b.externalIds[EXT.vni] === String(net.vni));
    if (other) throw new Error(`VNI ${net.vni} is already on bridge ${other.name}, not ${net.bridge}`);
    await this.vs.ensureBridge(net.bridge, {
      datapathType: this.datapathType,
      protocols: PROTOCOLS,
      failMode: 'secure',
      externalIds: { [EXT.owner]: OWNER.bridge, [EXT.networkType]: 'overlay', [EXT.vni]: String(net.vni) },
      otherConfig: { 'disable-in-band': 'true' },
    });
    // A new bridge has no OpenFlow management socket until ovs-vswitchd has applied the database.
    if (!existed) await this.waitReconfigured();
    await this.convergeOverlay(net.bridge, net.vni!);
  }

  /** The pod ports a bridge switches (function ports are not among them). */
  private podPorts(bridge: string): PortRow[] {
    return this.vs.cache.portsOf(bridge).filter((p) => p.externalIds[EXT.owner] === OWNER.pod && p.externalIds[EXT.networkType] !== 'function');
  }

  private functionPortsOn(bridge: string): PortRow[] {
    return this.vs.cache.portsOf(bridge).filter((p) => p.externalIds[EXT.owner] === OWNER.pod && p.externalIds[EXT.networkType] === 'function');
  }

  private ofport(name: string): number | undefined {
    const o = this.vs.cache.iface(name)?.ofport;
    return o !== undefined && o > 0 ? o : undefined;
  }

  /** Whether an existing tunnel interface is the one wanted (a changed UDP port or local IP means re-creating it). */
  private tunnelIsCurrent(iface: InterfaceRow | undefined, vni: number, peer: string): boolean {
    const o = iface?.options ?? {};
    return iface?.type === 'vxlan' && o.remote_ip === peer && o.key === String(vni) && o.dst_port === String(this.vxlanPort) && o.local_ip === this.nodeIp;
  }

  /**
   * Converges an overlay bridge (caller holds its lock): tunnels to the VNI's peers while there is a local
   * pod or function port (none otherwise), then the static flows for the current pod ports in one bundle,
   * then learned entries of removed tunnels. Function ports get no flow: the table-miss drops what they send,
   * and they are no flooding target.
   */
  private async convergeOverlay(bridge: string, vni: number): Promise<void> {
    const pods = this.podPorts(bridge);
    const inUse = pods.length > 0 || this.functionPortsOn(bridge).length > 0;
    const tunnels = this.vs.cache.portsOf(bridge).filter((p) => p.externalIds[EXT.owner] === OWNER.tunnel);
    const known = this.peers.get(vni) ?? tunnels.map((t) => t.externalIds[EXT.peer]!).filter(Boolean);
    const wanted = new Map<string, string>();
    for (const peer of inUse ? known : []) {
      const name = tunnelPortName(vni, peer);
      const clash = [...wanted].find(([, n]) => n === name);
      if (clash) throw new Error(`peers ${clash[0]} and ${peer} of VNI ${vni} map to one tunnel port name ${name}`);
      wanted.set(peer, name);
    }
    const gone: number[] = [];
    for (const t of tunnels) {
      const peer = t.externalIds[EXT.peer] ?? '';
      if (wanted.get(peer) === t.name && this.tunnelIsCurrent(this.vs.cache.iface(t.name), vni, peer)) continue;
      const o = this.ofport(t.name);
      if (o) gone.push(o);
      await this.removePort(t.name);
      this.log.info({ bridge, vni, peer, port: t.name }, 'tunnel removed');
    }
    for (const [peer, name] of wanted) {
      if (this.vs.cache.port(name)) continue;
      await this.vs.addPort(bridge, {
        name,
        type: 'vxlan',
        tunnel: { remoteIp: peer, localIp: this.nodeIp, key: vni, dstPort: this.vxlanPort },
        externalIds: { [EXT.owner]: OWNER.tunnel, [EXT.bridge]: bridge, [EXT.vni]: String(vni), [EXT.peer]: peer },
      });
      this.log.info({ bridge, vni, peer, port: name }, 'tunnel added');
    }
    const w = this.writer(bridge);
    await w.sync({
      cookie: OVERLAY_SYNC_SCOPE,
      flows: overlayFlows({
        round: this.round,
        localPorts: pods.flatMap((p) => this.ofport(p.name) ?? []),
        tunnelPorts: [...wanted.values()].flatMap((n) => this.ofport(n) ?? []),
      }),
    });
    for (const o of gone) await w.deleteWhere({ table: OverlayTable.MacTable, cookie: learnedScope(o) });
  }

  /** Removes a port and waits until the cache no longer has it (later decisions read the cache). */
  private async removePort(name: string): Promise<void> {
    await this.vs.removePort(name);
    await this.vs.cache.waitUntil((c) => (c.port(name) ? undefined : true), { timeoutMs: RECONFIGURE_TIMEOUT_MS, description: `port ${name} removed` });
  }

  async attach(att: SecondaryAttachment): Promise<AttachedInterface> {
    const net = att.network;
    checkNetwork(net);
    validateInterfaceSpec(att);
    if (net.networkType === 'function') checkFunctionAttachment(att);
    if (this.vs.cache.port(att.hostIfname)) throw new Error(`attachment ${att.hostIfname}: an OVS port of that name exists`);
    // The network whose bridge, VLAN or VNI the port takes: its own, or the one a function port is bound to.
    const segment = net.networkType === 'function' ? net.boundTo : net;
    const existing = this.vs.cache.bridge(net.bridge);
    if (!segment) this.checkFunctionBridge(net.bridge);
    else if (existing) this.checkBridgeUse(segment, existing);
    else await this.ensureNetwork(segment);
    const isFunction = net.networkType === 'function';
    const overlay = segment?.networkType === 'overlay';
    const vlan = segment?.networkType === 'vlan';
    // A function port on a trunk bridge: the bridge secure before the port exists, and the port passes nothing
    // (host end down) until it is no-flood and has its drop flow.
    const trunkFunction = isFunction && vlan;
    // A pod port stays down until every gate (its policy) is open: traffic never passes before.
    const gated = !isFunction && !!this.admission?.gated;
    if (trunkFunction) await this.locked(net.bridge, () => this.secureTrunk(net.bridge));

    const externalIds: Record<string, string> = {
      ...att.externalIds,
      [EXT.owner]: OWNER.pod,
      [EXT.bridge]: net.bridge,
      [EXT.networkType]: net.networkType,
      ...(overlay ? { [EXT.vni]: String(segment.vni) } : {}),
      ...(vlan ? { [EXT.vlan]: String(segment.vlan) } : {}),
      [EXT.netns]: att.netns,
      [EXT.ifname]: att.ifname,
      [EXT.mac]: att.mac.toLowerCase(),
      [EXT.mtu]: String(att.mtu),
      [EXT.addresses]: att.addresses.join(','),
    };
    const undoInterface = await setUpSecondaryInterface(this.host, { ...att, userspaceDatapath: this.userspace, ipv6LinkLocal: !isFunction, hostUp: !trunkFunction && !gated });
    let portAdded = false;
    try {
      const added = await this.vs.addPort(net.bridge, {
        name: att.hostIfname,
        ...(vlan ? { tag: segment.vlan, vlanMode: 'access' as const } : {}),
        externalIds,
      });
      portAdded = true;
      if (overlay) await this.locked(net.bridge, () => this.convergeOverlay(net.bridge, segment.vni!));
      if (trunkFunction) {
        await this.locked(net.bridge, () => this.convergeTrunk(net.bridge));
        await this.host.apply(new IpBatch().setLink(att.hostIfname, { up: true }));
      }
      if (gated) {
        await this.admission!.admit({ bridge: net.bridge, ofport: added.ofport!, externalIds });
        await this.host.apply(new IpBatch().setLink(att.hostIfname, { up: true }));
      }
      this.log.info({ bridge: net.bridge, port: att.hostIfname, ofport: added.ofport, netns: att.netns, ifname: att.ifname }, 'attached');
      return { hostIfname: att.hostIfname, ofport: added.ofport!, bridge: net.bridge, externalIds };
    } catch (e) {
      this.log.warn({ bridge: net.bridge, port: att.hostIfname, err: String(e) }, 'attach failed; undoing');
      if (portAdded) {
        await this.removePort(att.hostIfname).catch((err: unknown) => this.log.error({ port: att.hostIfname, err: String(err) }, 'cannot remove port'));
        await this.convergeAfterPortRemoval(net.bridge, externalIds).catch((err: unknown) => this.log.error({ bridge: net.bridge, err: String(err) }, 'cannot converge the bridge after a failed attach'));
      }
      await undoInterface();
      throw e;
    }
  }

  async detach(hostIfname: string): Promise<void> {
    const port = this.vs.cache.port(hostIfname);
    if (port && port.externalIds[EXT.owner] !== OWNER.pod) throw new Error(`${hostIfname} is not a secondary attachment's port`);
    if (port) {
      const bridge = this.vs.cache.bridgeOf(hostIfname)?.name ?? port.externalIds[EXT.bridge]!;
      const ofport = this.ofport(hostIfname);
      await this.removePort(hostIfname);
      await this.convergeAfterPortRemoval(bridge, port.externalIds, ofport);
      this.log.info({ bridge, port: hostIfname }, 'detached');
    }
    await tearDownSecondaryInterface(this.host, hostIfname);
  }

  /**
   * After a pod or function port left a bridge: an overlay bridge re-converges (flood lists, tunnels when it was
   * the last user) and forgets what it learned there; a secure trunk bridge loses the port's drop flow and
   * stays secure.
   */
  private async convergeAfterPortRemoval(bridge: string, ids: Readonly<Record<string, string>>, ofport?: number): Promise<void> {
    const b = this.vs.cache.bridge(bridge);
    if (!b) return;
    if (ids[EXT.vni]) {
      await this.locked(bridge, async () => {
        await this.convergeOverlay(bridge, Number(ids[EXT.vni]));
        if (ofport) await this.writer(bridge).deleteWhere({ table: OverlayTable.MacTable, cookie: learnedScope(ofport) });
      });
    } else if (ids[EXT.vlan] && b.failMode === 'secure') {
      await this.locked(bridge, () => this.convergeTrunk(bridge));
    }
  }

  async setOverlayPeers(vni: number, peerNodeIps: readonly string[]): Promise<void> {
    if (!Number.isInteger(vni) || vni < 1 || vni > MAX_VNI) throw new RangeError(`VNI ${vni} outside 1..${MAX_VNI}`);
    const peers = [...new Set(peerNodeIps.map(normalizeIp))].filter((p) => p !== this.nodeIp).sort();
    this.peers.set(vni, peers);
    const bridge = this.overlayBridges().find((b) => b.externalIds[EXT.vni] === String(vni));
    if (bridge) await this.locked(bridge.name, () => this.convergeOverlay(bridge.name, vni));
  }

  private secondaryBridges(): BridgeRow[] {
    return this.vs.cache.bridges().filter((b) => b.externalIds[EXT.owner] === OWNER.bridge && b.externalIds[EXT.networkType]);
  }

  private overlayBridges(): BridgeRow[] {
    return this.secondaryBridges().filter((b) => b.externalIds[EXT.networkType] === 'overlay');
  }

  /** The node's secondary bridges (VLAN trunk and overlay), by name. */
  bridgeNames(): string[] {
    return this.secondaryBridges().map((b) => b.name);
  }

  /** A secondary bridge's ports as OVS has them now (Traceflow reads where a packet can go); undefined when the node has no such bridge. */
  bridgePorts(bridge: string): BridgePorts | undefined {
    const b = this.secondaryBridges().find((x) => x.name === bridge);
    if (!b) return undefined;
    const ports = this.vs.cache.portsOf(bridge);
    const withOfport = (p: PortRow): number => this.ofport(p.name) ?? 0;
    const uplink = ports.find((p) => p.externalIds[EXT.owner] === OWNER.uplink);
    return {
      kind: b.externalIds[EXT.networkType] === 'overlay' ? 'overlay' : 'trunk',
      ...(uplink && withOfport(uplink) ? { uplink: { name: uplink.name, ofport: withOfport(uplink) } } : {}),
      tunnels: ports.filter((p) => p.externalIds[EXT.owner] === OWNER.tunnel && withOfport(p)).map((p) => ({ name: p.name, ofport: withOfport(p), remoteIp: p.externalIds[EXT.peer] ?? '' })),
      pods: this.podPorts(bridge)
        .filter((p) => withOfport(p))
        .map((p) => ({ name: p.name, ofport: withOfport(p), mac: (p.externalIds[EXT.mac] ?? '').toLowerCase(), ifname: p.externalIds[EXT.ifname] ?? '', ...(p.tag !== undefined ? { vlan: p.tag } : {}), pod: `${p.externalIds[POD_EXT.podNamespace] ?? ''}/${p.externalIds[POD_EXT.podName] ?? ''}` })),
    };
  }

  attachments(): AttachedInterface[] {
    return this.vs.cache.findPorts({ [EXT.owner]: OWNER.pod }).map((p) => ({
      hostIfname: p.name,
      ofport: this.vs.cache.iface(p.name)?.ofport ?? -1,
      bridge: this.vs.cache.bridgeOf(p.name)?.name ?? p.externalIds[EXT.bridge] ?? '',
      externalIds: { ...p.externalIds },
    }));
  }

  /**
   * After ovs-vswitchd restarted (or on agent start, with a new round): waits until the daemon applied the
   * database, then converges every secure trunk bridge (no-flood, flows) and every overlay bridge (tunnels and
   * flows). Standalone trunk bridges need nothing: the daemon re-creates their NORMAL flow itself, and uplinks
   * and veths are kernel devices that kept their settings.
   */
  async restore(): Promise<void> {
    this.ensured.clear();
    await this.waitReconfigured();
    // A secure trunk bridge comes back from OVSDB secure and without flows: it forwards nothing until
    // convergeTrunk made its function ports no-flood and put the flows back.
    for (const b of this.secondaryBridges().filter((x) => x.externalIds[EXT.networkType] === 'vlan' && x.failMode === 'secure')) {
      await this.locked(b.name, () => this.convergeTrunk(b.name));
    }
    for (const b of this.overlayBridges()) {
      const vni = Number(b.externalIds[EXT.vni]);
      await this.locked(b.name, () => this.convergeOverlay(b.name, vni));
    }
  }

  /** Bumps next_cfg and waits for ovs-vswitchd to report it applied (its ofports are then current). */
  private async waitReconfigured(): Promise<void> {
    const [, sel] = await this.vs.transact([op.mutate('Open_vSwitch', [], [['next_cfg', '+=', 1]]), op.select('Open_vSwitch', [], ['next_cfg'])]);
    const target = Number(sel.rows[0]?.next_cfg);
    await this.vs.cache.waitUntil((c) => ((c.openVSwitch()?.curCfg ?? 0) >= target ? true : undefined), {
      timeoutMs: RECONFIGURE_TIMEOUT_MS,
      description: 'ovs-vswitchd to apply the database',
    });
  }

  localVnis(): number[] {
    // Pod ports and the function ports bound to an overlay network both carry the VNI.
    const vnis = this.vs.cache
      .findPorts({ [EXT.owner]: OWNER.pod })
      .map((p) => Number(p.externalIds[EXT.vni]))
      .filter((v) => Number.isInteger(v) && v > 0);
    return [...new Set(vnis)].sort((a, b) => a - b);
  }
}
