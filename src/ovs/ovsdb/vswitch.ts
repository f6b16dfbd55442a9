import { logger } from '../../util/log.js';
import { OvsdbCache } from './cache.js';
import { OvsdbClient, type MonitorHandle, type OvsdbClientOptions, type RequestOptions } from './client.js';
import {
  BridgeNotFoundError,
  CacheWaitTimeoutError,
  InterfaceOpenError,
  InvalidInterfaceTypeError,
  InvalidPortSpecError,
  OvsdbError,
  OvsdbWaitTimeoutError,
  RowNotFoundError,
} from './errors.js';
import { formatRemote } from './transport.js';
import { op, type Condition, type Mutation, type Operation, type ResultsOf } from './operations.js';
import { namedUuid, ovsMap, ovsOptional, ovsSet, uuid, uuidValue, type WireAtom, type WireRow, type WireValue } from './values.js';
import {
  VSWITCH_DB,
  VSWITCH_MONITOR,
  VswitchCache,
  type BridgeRow,
  type FailMode,
  type InterfaceRow,
  type PortRow,
  type VlanMode,
} from './vswitch-cache.js';

/** Interface types Seine may create; "system" is a kernel device (stored as ""). */
export const INTERFACE_TYPES = [
  'system', 'internal', 'tap', 'patch',
  'vxlan', 'geneve', 'gre', 'ip6gre', 'erspan', 'ip6erspan', 'stt', 'bareudp', 'gtpu', 'srv6',
  'dpdk', 'dpdkvhostuserclient', 'afxdp', 'afxdp-nonpmd',
] as const;
export type InterfaceType = (typeof INTERFACE_TYPES)[number];

const TUNNEL_TYPES: ReadonlySet<string> = new Set(['vxlan', 'geneve', 'gre', 'ip6gre', 'erspan', 'ip6erspan', 'stt', 'bareudp', 'gtpu', 'srv6']);
/** Types backed by a kernel netdev, whose names are limited to IFNAMSIZ - 1 bytes. */
const KERNEL_TYPES: ReadonlySet<string> = new Set(['system', 'internal', 'tap']);
const VLAN_MODES: readonly VlanMode[] = ['trunk', 'access', 'native-tagged', 'native-untagged', 'dot1q-tunnel'];
const OPENFLOW_VERSIONS = ['OpenFlow10', 'OpenFlow11', 'OpenFlow12', 'OpenFlow13', 'OpenFlow14', 'OpenFlow15'] as const;
export type OpenFlowVersion = (typeof OPENFLOW_VERSIONS)[number];

export interface BridgeSpec {
  /** "netdev" for the userspace datapath, "system" (or "") for the kernel one. */
  datapathType?: string;
  protocols?: readonly OpenFlowVersion[];
  failMode?: FailMode;
  /** Keys set (others left alone). */
  externalIds?: Readonly<Record<string, string>>;
  otherConfig?: Readonly<Record<string, string>>;
}

export interface TunnelOptions {
  /** An address, or "flow" to take it from the tunnel metadata set by flows. */
  remoteIp: string;
  localIp?: string;
  /** VNI / key, or "flow". */
  key?: string | number;
  dstPort?: number;
}

export interface PortSpec {
  name: string;
  /** Default "system". */
  type?: InterfaceType;
  /** Interface options, merged under `tunnel` / `peer`. */
  options?: Readonly<Record<string, string>>;
  tunnel?: TunnelOptions;
  /** Patch peer port name. */
  peer?: string;
  tag?: number;
  trunks?: readonly number[];
  vlanMode?: VlanMode;
  /** Port external_ids. */
  externalIds?: Readonly<Record<string, string>>;
  interfaceExternalIds?: Readonly<Record<string, string>>;
  mac?: string;
  ofportRequest?: number;
  mtuRequest?: number;
}

export interface AddPortOptions {
  /** Wait for ovs-vswitchd to assign the OpenFlow port (default true). */
  waitOfport?: boolean;
  /** Bound for that wait (default 30 s). */
  timeoutMs?: number;
}

export interface AddedPort {
  port: PortRow;
  iface: InterfaceRow;
  /** Set when waitOfport. */
  ofport?: number;
}

export interface VswitchConnectOptions extends OvsdbClientOptions {
  /** Bound for the first connection plus initial sync (default 30 s). */
  syncTimeoutMs?: number;
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const DEFAULT_TIMEOUT_MS = 30_000;

function isVlanId(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= 4095;
}

function bounded<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CacheWaitTimeoutError(what, timeoutMs)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Replaces the given keys of a map column: delete them, then insert the new pairs. */
function setKeys(column: string, set: Readonly<Record<string, string>>, remove: readonly string[] = []): Mutation[] {
  const keys = [...new Set([...Object.keys(set), ...remove])];
  const mutations: Mutation[] = [];
  if (keys.length) mutations.push([column, 'delete', ovsSet(keys)]);
  if (Object.keys(set).length) mutations.push([column, 'insert', ovsMap(set)]);
  return mutations;
}

const byName = (name: string): Condition[] => [['name', '==', name]];

/**
 * Typed operations on the Open_vSwitch database, over an OvsdbClient with a replicated VswitchCache.
 * Every change is one transaction, so a failed call leaves nothing behind.
 */
export class Vswitch {
  private readonly log = logger('ovsdb');

  private constructor(
    readonly client: OvsdbClient,
    readonly cache: VswitchCache,
    private readonly monitorHandle: MonitorHandle,
    private readonly ownsClient: boolean,
  ) {}

  /** Connects a new client, replicates the vswitch tables and waits for the first sync. */
  static async connect(options: VswitchConnectOptions): Promise<Vswitch> {
    const client = new OvsdbClient(options);
    client.start();
    try {
      return await Vswitch.attach(client, options.syncTimeoutMs, true);
    } catch (e) {
      await client.close();
      throw e;
    }
  }

  /** Replicates the vswitch tables over an existing client (which close() then leaves open unless `ownsClient`). */
  static async attach(client: OvsdbClient, syncTimeoutMs = DEFAULT_TIMEOUT_MS, ownsClient = false): Promise<Vswitch> {
    const raw = new OvsdbCache();
    const handle = client.monitor(VSWITCH_DB, VSWITCH_MONITOR, raw);
    try {
      await bounded(handle.ready, syncTimeoutMs, `the first ${VSWITCH_DB} sync from ${formatRemote(client.remote)}`);
    } catch (e) {
      await handle.cancel();
      throw e;
    }
    return new Vswitch(client, new VswitchCache(raw), handle, ownsClient);
  }

  async close(): Promise<void> {
    await this.monitorHandle.cancel();
    if (this.ownsClient) await this.client.close();
  }

  /** A transaction on the Open_vSwitch database. */
  transact<const T extends readonly Operation[]>(ops: T, options?: RequestOptions): Promise<ResultsOf<T>> {
    return this.client.transact(VSWITCH_DB, ops, options);
  }

  /**
   * Creates the bridge (with its local internal port) or converges an existing one to `spec`:
   * datapath type, protocols and fail mode are set; external_ids / other_config keys are set, others kept.
   */
  async ensureBridge(name: string, spec: BridgeSpec = {}): Promise<BridgeRow> {
    for (const p of spec.protocols ?? []) {
      if (!OPENFLOW_VERSIONS.includes(p)) throw new InvalidPortSpecError(`bridge ${name}: unknown protocol ${p}`);
    }
    const columns: Record<string, WireValue> = {};
    if (spec.datapathType !== undefined) columns.datapath_type = spec.datapathType;
    if (spec.protocols !== undefined) columns.protocols = ovsSet(spec.protocols);
    if (spec.failMode !== undefined) columns.fail_mode = spec.failMode;
    const mutations = [...setKeys('external_ids', spec.externalIds ?? {}), ...setKeys('other_config', spec.otherConfig ?? {})];
    // Converging and creating are separate transactions; the `wait` makes creation lose cleanly to a concurrent creator.
    for (let attempt = 0; attempt < 3; attempt++) {
      const converge: Operation[] = [];
      if (Object.keys(columns).length) converge.push(op.update('Bridge', byName(name), columns));
      if (mutations.length) converge.push(op.mutate('Bridge', byName(name), mutations));
      const [found] = await this.transact([op.select('Bridge', byName(name), ['_uuid']), ...converge]);
      if (found.rows.length) return this.cache.waitForBridge(name);
      try {
        const res = await this.transact([
          op.wait('Bridge', byName(name), ['name'], '==', [], 0),
          op.insert('Interface', { name, type: 'internal' }, 'iface'),
          op.insert('Port', { name, interfaces: namedUuid('iface') }, 'port'),
          op.insert('Bridge', { name, ports: namedUuid('port'), ...columns, external_ids: ovsMap(spec.externalIds ?? {}), other_config: ovsMap(spec.otherConfig ?? {}) }, 'bridge'),
          op.mutate('Open_vSwitch', [], [['bridges', 'insert', ovsSet([namedUuid('bridge')])]]),
          op.comment(`seine: create bridge ${name}`),
        ]);
        // Unreferenced, the new bridge was garbage-collected with the transaction.
        if (res[4].count === 0) throw new RowNotFoundError('Open_vSwitch', 'root row (database not initialised)');
        this.log.info({ bridge: name }, 'bridge created');
        return await this.cache.waitForBridge(name);
      } catch (e) {
        if (e instanceof OvsdbWaitTimeoutError && e.opIndex === 0) continue;
        throw e;
      }
    }
    throw new OvsdbError(`bridge ${name} kept appearing and disappearing while being ensured`);
  }

  /** Removes a bridge with all its ports. Returns false when there was none. */
  async deleteBridge(name: string): Promise<boolean> {
    const [found] = await this.transact([op.select('Bridge', byName(name), ['_uuid'])]);
    if (!found.rows.length) return false;
    const id = uuidValue(found.rows[0]!._uuid);
    const [, deleted] = await this.transact([
      op.mutate('Open_vSwitch', [], [['bridges', 'delete', uuid(id)]]),
      op.delete('Bridge', [['_uuid', '==', uuid(id)]]),
    ]);
    return deleted.count > 0;
  }

  /**
   * Adds a port with one interface to `bridge` in a single transaction. Validation failures throw
   * before anything is sent. With waitOfport (default) it resolves once ovs-vswitchd assigned the
   * OpenFlow port; if vswitchd cannot open the interface (or does not answer in time) the port is removed
   * again and InterfaceOpenError (CacheWaitTimeoutError) is thrown.
   */
  async addPort(bridge: string, spec: PortSpec, options: AddPortOptions = {}): Promise<AddedPort> {
    const { iface, port } = this.portRows(spec);
    const res = await this.transact([
      op.wait('Bridge', byName(bridge), ['name'], '!=', [], 0),
      op.insert('Interface', iface, 'iface'),
      op.insert('Port', { ...port, interfaces: namedUuid('iface') }, 'port'),
      op.mutate('Bridge', byName(bridge), [['ports', 'insert', ovsSet([namedUuid('port')])]]),
    ]).catch((e: unknown) => {
      throw e instanceof OvsdbWaitTimeoutError && e.opIndex === 0 ? new BridgeNotFoundError(bridge) : e;
    });
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const portUuid = res[2].uuid;
    const ifaceUuid = res[1].uuid;
    if (options.waitOfport === false) {
      const portRow = await this.cache.waitForPort(spec.name, (p) => p.uuid === portUuid, { timeoutMs });
      const ifaceRow = await this.cache.waitForInterface(spec.name, (i) => i.uuid === ifaceUuid, { timeoutMs });
      return { port: portRow, iface: ifaceRow };
    }
    try {
      const ifaceRow = await this.waitForOfport(spec.name, timeoutMs);
      const portRow = this.cache.portByUuid(portUuid) ?? (await this.cache.waitForPort(spec.name, undefined, { timeoutMs }));
      return { port: portRow, iface: ifaceRow, ofport: ifaceRow.ofport };
    } catch (e) {
      await this.removePort(spec.name).catch((removeErr: unknown) =>
        this.log.error({ port: spec.name, err: (removeErr as Error).message }, 'could not remove port after failed add'),
      );
      throw e;
    }
  }

  /**
   * Resolves with the interface once ovs-vswitchd assigned its ofport; throws InterfaceOpenError
   * carrying the Interface `error` column when vswitchd reports ofport -1.
   */
  async waitForOfport(ifaceName: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<InterfaceRow> {
    const iface = await this.cache.waitForInterface(ifaceName, (i) => i.ofport !== undefined, {
      timeoutMs,
      description: `an ofport for interface ${ifaceName}`,
    });
    if (iface.ofport !== -1) return iface;
    // vswitchd writes the error together with ofport -1; allow a moment in case it lags.
    const failed = await this.cache
      .waitForInterface(ifaceName, (i) => i.error !== undefined || i.ofport !== -1, { timeoutMs: 1000 })
      .catch(() => iface);
    if (failed.ofport !== -1) return failed;
    throw new InterfaceOpenError(ifaceName, failed.error ?? 'unknown error (ofport -1)');
  }

  /** Removes a port and its interfaces from whichever bridge holds it. Returns false when there was none. */
  async removePort(name: string): Promise<boolean> {
    const [found] = await this.transact([op.select('Port', byName(name), ['_uuid'])]);
    if (!found.rows.length) return false;
    const id = uuid(uuidValue(found.rows[0]!._uuid));
    // Interfaces are not root rows: OVSDB deletes them with the last reference.
    const [, deleted] = await this.transact([
      op.mutate('Bridge', [['ports', 'includes', id]], [['ports', 'delete', id]]),
      op.delete('Port', [['_uuid', '==', id]]),
    ]);
    return deleted.count > 0;
  }

  /** Ports (from the cache) whose external_ids contain all of `externalIds`. */
  findPorts(externalIds: Readonly<Record<string, string>>): PortRow[] {
    return this.cache.findPorts(externalIds);
  }

  /** Sets (and removes) external_ids keys of a port; other keys are kept. */
  async setPortExternalIds(name: string, set: Readonly<Record<string, string>>, remove: readonly string[] = []): Promise<void> {
    await this.mutateNamed('Port', name, setKeys('external_ids', set, remove));
  }

  async setInterfaceExternalIds(name: string, set: Readonly<Record<string, string>>, remove: readonly string[] = []): Promise<void> {
    await this.mutateNamed('Interface', name, setKeys('external_ids', set, remove));
  }

  /** Sets (and removes) Open_vSwitch other_config keys, e.g. flow-restore-wait. */
  async setOpenVSwitchOtherConfig(set: Readonly<Record<string, string>>, remove: readonly string[] = []): Promise<void> {
    const mutations = setKeys('other_config', set, remove);
    if (!mutations.length) return;
    const [res] = await this.transact([op.mutate('Open_vSwitch', [], mutations)]);
    if (res.count === 0) throw new RowNotFoundError('Open_vSwitch', 'root row (database not initialised)');
  }

  private async mutateNamed(table: 'Port' | 'Interface', name: string, mutations: Mutation[]): Promise<void> {
    if (!mutations.length) return;
    const [res] = await this.transact([op.mutate(table, byName(name), mutations)]);
    if (res.count === 0) throw new RowNotFoundError(table, name);
  }

  /** Validates a port spec and builds its Interface and Port rows; throws before anything is sent. */
  private portRows(spec: PortSpec): { iface: WireRow; port: Record<string, WireValue> } {
    const type = spec.type ?? 'system';
    const name = spec.name;
    const bad = (msg: string): never => {
      throw new InvalidPortSpecError(`port ${name}: ${msg}`);
    };
    if (!(INTERFACE_TYPES as readonly string[]).includes(type)) throw new InvalidInterfaceTypeError(type, INTERFACE_TYPES);
    // The running vswitchd lists what it supports; an empty list means it has not reported yet.
    const supported = this.cache.openVSwitch()?.ifaceTypes ?? [];
    if (supported.length && type !== 'system' && !supported.includes(type)) throw new InvalidInterfaceTypeError(type, supported);
    if (!name || /[\s/]/.test(name)) bad('invalid name');
    if (KERNEL_TYPES.has(type) && Buffer.byteLength(name) > 15) bad('a kernel device name has at most 15 bytes');

    const options: Record<string, string> = { ...spec.options };
    if (spec.tunnel) {
      if (!TUNNEL_TYPES.has(type)) bad(`tunnel options need a tunnel type, not ${type}`);
      options.remote_ip = spec.tunnel.remoteIp;
      if (spec.tunnel.localIp !== undefined) options.local_ip = spec.tunnel.localIp;
      if (spec.tunnel.key !== undefined) options.key = String(spec.tunnel.key);
      if (spec.tunnel.dstPort !== undefined) {
        if (!(Number.isInteger(spec.tunnel.dstPort) && spec.tunnel.dstPort > 0 && spec.tunnel.dstPort < 65536)) bad('invalid dst_port');
        options.dst_port = String(spec.tunnel.dstPort);
      }
    }
    if (TUNNEL_TYPES.has(type) && !options.remote_ip) bad(`${type} needs remote_ip`);
    if (spec.peer !== undefined) {
      if (type !== 'patch') bad('peer is only for patch ports');
      options.peer = spec.peer;
    }
    if (type === 'patch' && (!options.peer || options.peer === name)) bad('a patch port needs a peer other than itself');

    if (spec.tag !== undefined && !isVlanId(spec.tag)) bad(`invalid VLAN tag ${spec.tag}`);
    for (const t of spec.trunks ?? []) if (!isVlanId(t)) bad(`invalid trunk VLAN ${t}`);
    if (spec.vlanMode !== undefined && !VLAN_MODES.includes(spec.vlanMode)) bad(`invalid vlan_mode ${spec.vlanMode}`);
    if (spec.mac !== undefined && !MAC_RE.test(spec.mac)) bad(`invalid MAC ${spec.mac}`);
    if (spec.ofportRequest !== undefined && !(Number.isInteger(spec.ofportRequest) && spec.ofportRequest >= 1 && spec.ofportRequest <= 65279)) {
      bad(`invalid ofport_request ${spec.ofportRequest}`);
    }
    if (spec.mtuRequest !== undefined && !(Number.isInteger(spec.mtuRequest) && spec.mtuRequest >= 1)) bad(`invalid mtu_request ${spec.mtuRequest}`);

    const iface: Record<string, WireValue> = {
      name,
      type: type === 'system' ? '' : type,
      options: ovsMap(options),
      external_ids: ovsMap(spec.interfaceExternalIds ?? {}),
    };
    if (spec.mac !== undefined) iface.mac = spec.mac;
    if (spec.ofportRequest !== undefined) iface.ofport_request = spec.ofportRequest;
    if (spec.mtuRequest !== undefined) iface.mtu_request = spec.mtuRequest;
    const port: Record<string, WireValue> = { name, external_ids: ovsMap(spec.externalIds ?? {}) };
    if (spec.tag !== undefined) port.tag = spec.tag;
    if (spec.trunks !== undefined) port.trunks = ovsSet(spec.trunks as readonly WireAtom[]);
    if (spec.vlanMode !== undefined) port.vlan_mode = ovsOptional(spec.vlanMode);
    return { iface, port };
  }
}
