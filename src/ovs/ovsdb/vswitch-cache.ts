import type { OvsdbCache, CacheWaitOptions, ChangeKind } from './cache.js';
import type { MonitorTableRequest } from './client.js';
import type { DbRow, DbValue } from './schema.js';
import type { JsAtom } from './values.js';

/*
 * Typed view of the Open_vSwitch database tables the agent replicates.
 */

export const VSWITCH_DB = 'Open_vSwitch';

export type FailMode = 'secure' | 'standalone';
export type VlanMode = 'trunk' | 'access' | 'native-tagged' | 'native-untagged' | 'dot1q-tunnel';

export interface OpenVSwitchRow {
  uuid: string;
  bridges: string[];
  otherConfig: Record<string, string>;
  externalIds: Record<string, string>;
  nextCfg: number;
  curCfg: number;
  ovsVersion?: string;
  dbVersion?: string;
  datapathTypes: string[];
  ifaceTypes: string[];
}

export interface BridgeRow {
  uuid: string;
  name: string;
  ports: string[];
  datapathType: string;
  protocols: string[];
  failMode?: FailMode;
  externalIds: Record<string, string>;
  otherConfig: Record<string, string>;
}

export interface PortRow {
  uuid: string;
  name: string;
  interfaces: string[];
  tag?: number;
  trunks: number[];
  vlanMode?: VlanMode;
  externalIds: Record<string, string>;
  otherConfig: Record<string, string>;
}

export interface InterfaceRow {
  uuid: string;
  name: string;
  /** "" is a system (kernel) device. */
  type: string;
  options: Record<string, string>;
  /** Set by ovs-vswitchd once it added the interface; -1 when it could not (see `error`). */
  ofport?: number;
  ofportRequest?: number;
  error?: string;
  externalIds: Record<string, string>;
  otherConfig: Record<string, string>;
  mac?: string;
  macInUse?: string;
  ifindex?: number;
  linkState?: 'up' | 'down';
  mtu?: number;
  mtuRequest?: number;
}

export interface VswitchRows {
  Open_vSwitch: OpenVSwitchRow;
  Bridge: BridgeRow;
  Port: PortRow;
  Interface: InterfaceRow;
}
export type VswitchTable = keyof VswitchRows;

export type VswitchChange = {
  [T in VswitchTable]: { table: T; uuid: string; kind: ChangeKind; old?: VswitchRows[T]; row?: VswitchRows[T] };
}[VswitchTable];

/** What is replicated: the columns the agent reads (not statistics, which change every few seconds). */
export const VSWITCH_MONITOR: Readonly<Record<VswitchTable, MonitorTableRequest>> = {
  Open_vSwitch: {
    columns: ['bridges', 'other_config', 'external_ids', 'next_cfg', 'cur_cfg', 'ovs_version', 'db_version', 'datapath_types', 'iface_types'],
  },
  Bridge: { columns: ['name', 'ports', 'datapath_type', 'protocols', 'fail_mode', 'external_ids', 'other_config'] },
  Port: { columns: ['name', 'interfaces', 'tag', 'trunks', 'vlan_mode', 'external_ids', 'other_config'] },
  Interface: {
    columns: [
      'name', 'type', 'options', 'ofport', 'ofport_request', 'error', 'external_ids', 'other_config',
      'mac', 'mac_in_use', 'ifindex', 'link_state', 'mtu', 'mtu_request',
    ],
  },
};

const str = (v: DbValue | undefined): string => (typeof v === 'string' ? v : '');
const num = (v: DbValue | undefined): number => (typeof v === 'number' ? v : 0);
const list = (v: DbValue | undefined): readonly JsAtom[] => (Array.isArray(v) ? (v as readonly JsAtom[]) : []);
const strings = (v: DbValue | undefined): string[] => list(v).map(String);
const numbers = (v: DbValue | undefined): number[] => list(v).map(Number);
const optString = (v: DbValue | undefined): string | undefined => (list(v).length ? String(list(v)[0]) : undefined);
const optNumber = (v: DbValue | undefined): number | undefined => (list(v).length ? Number(list(v)[0]) : undefined);
const stringMap = (v: DbValue | undefined): Record<string, string> =>
  v instanceof Map ? Object.fromEntries([...v].map(([k, val]) => [String(k), String(val)])) : {};

const DECODERS: { [T in VswitchTable]: (uuid: string, r: DbRow) => VswitchRows[T] } = {
  Open_vSwitch: (uuid, r) => ({
    uuid,
    bridges: strings(r.bridges),
    otherConfig: stringMap(r.other_config),
    externalIds: stringMap(r.external_ids),
    nextCfg: num(r.next_cfg),
    curCfg: num(r.cur_cfg),
    ovsVersion: optString(r.ovs_version),
    dbVersion: optString(r.db_version),
    datapathTypes: strings(r.datapath_types),
    ifaceTypes: strings(r.iface_types),
  }),
  Bridge: (uuid, r) => ({
    uuid,
    name: str(r.name),
    ports: strings(r.ports),
    datapathType: str(r.datapath_type),
    protocols: strings(r.protocols),
    failMode: optString(r.fail_mode) as FailMode | undefined,
    externalIds: stringMap(r.external_ids),
    otherConfig: stringMap(r.other_config),
  }),
  Port: (uuid, r) => ({
    uuid,
    name: str(r.name),
    interfaces: strings(r.interfaces),
    tag: optNumber(r.tag),
    trunks: numbers(r.trunks),
    vlanMode: optString(r.vlan_mode) as VlanMode | undefined,
    externalIds: stringMap(r.external_ids),
    otherConfig: stringMap(r.other_config),
  }),
  Interface: (uuid, r) => ({
    uuid,
    name: str(r.name),
    type: str(r.type),
    options: stringMap(r.options),
    ofport: optNumber(r.ofport),
    ofportRequest: optNumber(r.ofport_request),
    error: optString(r.error),
    externalIds: stringMap(r.external_ids),
    otherConfig: stringMap(r.other_config),
    mac: optString(r.mac),
    macInUse: optString(r.mac_in_use),
    ifindex: optNumber(r.ifindex),
    linkState: optString(r.link_state) as 'up' | 'down' | undefined,
    mtu: optNumber(r.mtu),
    mtuRequest: optNumber(r.mtu_request),
  }),
};

function matchesAll(have: Record<string, string>, want: Readonly<Record<string, string>>): boolean {
  return Object.entries(want).every(([k, v]) => have[k] === v);
}

/** Typed, read-only access to a cache monitoring VSWITCH_MONITOR. */
export class VswitchCache {
  /** Typed rows, decoded once per row snapshot. */
  private readonly decoded = new WeakMap<DbRow, unknown>();

  constructor(readonly raw: OvsdbCache) {}

  typed<T extends VswitchTable>(table: T, uuid: string, row: DbRow): VswitchRows[T] {
    let t = this.decoded.get(row) as VswitchRows[T] | undefined;
    if (!t) {
      t = DECODERS[table](uuid, row);
      this.decoded.set(row, t);
    }
    return t;
  }

  private all<T extends VswitchTable>(table: T): VswitchRows[T][] {
    return [...this.raw.rows(table)].map(([uuid, row]) => this.typed(table, uuid, row));
  }

  private byUuid<T extends VswitchTable>(table: T, uuid: string): VswitchRows[T] | undefined {
    const row = this.raw.get(table, uuid);
    return row && this.typed(table, uuid, row);
  }

  private byName<T extends Exclude<VswitchTable, 'Open_vSwitch'>>(table: T, name: string): VswitchRows[T] | undefined {
    const hit = this.raw.lookup(table, 'name', name);
    return hit && this.typed(table, hit.uuid, hit.row);
  }

  /** The single Open_vSwitch row (absent only before `ovs-vsctl init`). */
  openVSwitch(): OpenVSwitchRow | undefined {
    return this.all('Open_vSwitch')[0];
  }

  bridge(name: string): BridgeRow | undefined {
    return this.byName('Bridge', name);
  }
  bridges(): BridgeRow[] {
    return this.all('Bridge');
  }
  port(name: string): PortRow | undefined {
    return this.byName('Port', name);
  }
  portByUuid(uuid: string): PortRow | undefined {
    return this.byUuid('Port', uuid);
  }
  ports(): PortRow[] {
    return this.all('Port');
  }
  iface(name: string): InterfaceRow | undefined {
    return this.byName('Interface', name);
  }
  ifaceByUuid(uuid: string): InterfaceRow | undefined {
    return this.byUuid('Interface', uuid);
  }
  interfaces(): InterfaceRow[] {
    return this.all('Interface');
  }

  portsOf(bridge: string): PortRow[] {
    return (this.bridge(bridge)?.ports ?? []).flatMap((u) => this.portByUuid(u) ?? []);
  }

  interfacesOf(port: string): InterfaceRow[] {
    return (this.port(port)?.interfaces ?? []).flatMap((u) => this.ifaceByUuid(u) ?? []);
  }

  bridgeOf(port: string): BridgeRow | undefined {
    const p = this.port(port);
    return p && this.bridges().find((b) => b.ports.includes(p.uuid));
  }

  /** Ports whose external_ids contain every given key with the given value. */
  findPorts(externalIds: Readonly<Record<string, string>>): PortRow[] {
    return this.ports().filter((p) => matchesAll(p.externalIds, externalIds));
  }

  findInterfaces(externalIds: Readonly<Record<string, string>>): InterfaceRow[] {
    return this.interfaces().filter((i) => matchesAll(i.externalIds, externalIds));
  }

  /** Typed change batches; returns the unsubscribe function. */
  onChange(listener: (changes: readonly VswitchChange[]) => void): () => void {
    return this.raw.onChange((changes) => {
      const typed = changes
        .filter((c) => c.table in DECODERS)
        .map((c) => {
          const t = c.table as VswitchTable;
          return {
            table: t,
            uuid: c.uuid,
            kind: c.kind,
            old: c.old && this.typed(t, c.uuid, c.old),
            row: c.row && this.typed(t, c.uuid, c.row),
          } as VswitchChange;
        });
      if (typed.length) listener(typed);
    });
  }

  waitForBridge(name: string, predicate: (b: BridgeRow) => boolean = () => true, options: CacheWaitOptions = {}): Promise<BridgeRow> {
    return this.waitNamed('Bridge', name, predicate, options);
  }

  waitForPort(name: string, predicate: (p: PortRow) => boolean = () => true, options: CacheWaitOptions = {}): Promise<PortRow> {
    return this.waitNamed('Port', name, predicate, options);
  }

  /** E.g. `waitForInterface('veth1', (i) => i.ofport !== undefined)`. */
  waitForInterface(name: string, predicate: (i: InterfaceRow) => boolean = () => true, options: CacheWaitOptions = {}): Promise<InterfaceRow> {
    return this.waitNamed('Interface', name, predicate, options);
  }

  /** Resolves once `check` returns something other than undefined (see OvsdbCache.waitUntil). */
  waitUntil<R>(check: (cache: VswitchCache) => R | undefined, options: CacheWaitOptions = {}): Promise<R> {
    return this.raw.waitUntil(() => check(this), options);
  }

  private waitNamed<T extends Exclude<VswitchTable, 'Open_vSwitch'>>(
    table: T,
    name: string,
    predicate: (row: VswitchRows[T]) => boolean,
    options: CacheWaitOptions,
  ): Promise<VswitchRows[T]> {
    return this.raw.waitUntil(
      () => {
        const row = this.byName(table, name);
        return row && predicate(row) ? row : undefined;
      },
      { description: `${table} ${name} in the expected state`, tables: [table], ...options },
    );
  }
}
