import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniCode } from '../../src/cni/errors.js';
import { parseNetworksAnnotation } from '../../src/secondary/annotations/index.js';
import {
  bridgeConflicts,
  CapabilityError,
  checkCapabilities,
  defaultBridge,
  loadNodeNetworkConfig,
  NadConfigError,
  overlayBridgeName,
  parseNad,
  parseNadConfig,
  parseNodeUplinksAnnotation,
  parseUplinkMap,
  resolveUplink,
  supportedCapabilities,
  type NadNetwork,
  type SegmentNetwork,
  type SeineNadNetwork,
  type SeineNetwork,
} from '../../src/secondary/nad/index.js';

const ref = { namespace: 'telco', name: 'vlan100' };
const VLAN = { cniVersion: '1.0.0', type: 'seine', networkType: 'vlan', vlan: 100, mtu: 1500, ipam: { type: 'seine', ippools: ['vlan100'] } };
const OVERLAY = { cniVersion: '1.0.0', type: 'seine', networkType: 'overlay', vni: 5001, mtu: 1450, ipam: { type: 'seine', ippools: ['ovl-a', 'ovl-b'] } };

const parse = (conf: unknown): NadNetwork => parseNadConfig(typeof conf === 'string' ? conf : JSON.stringify(conf), ref);
const seine = (conf: unknown): SeineNadNetwork => {
  const n = parse(conf);
  if (n.kind !== 'seine') throw new Error(`expected a seine network, got ${n.kind}`);
  return n;
};
const ipamOf = (conf: unknown): SegmentNetwork['ipam'] => {
  const n = seine(conf).network;
  if (n.networkType === 'function') throw new Error('expected a VLAN or overlay network');
  return n.ipam;
};
function errorOf(conf: unknown): NadConfigError {
  try {
    parse(conf);
  } catch (e) {
    if (e instanceof NadConfigError) return e;
    throw e;
  }
  throw new Error('parsed without error');
}

describe("Seine's own NAD config", () => {
  it('resolves the VLAN example: name from the NAD, default bridge br-vlan, pools in order', () => {
    const n = seine(VLAN);
    expect(n.name).toBe('vlan100');
    expect(n.ref).toEqual(ref);
    expect(n.list).toMatchObject({ name: 'vlan100', cniVersion: '1.0.0', plugins: [{ type: 'seine', vlan: 100 }] });
    expect(n.network).toEqual({ networkType: 'vlan', vlan: 100, mtu: 1500, bridge: 'br-vlan', ipam: { type: 'seine', ippools: ['vlan100'] } });
  });

  it('resolves the overlay example: one bridge per VNI', () => {
    expect(seine({ ...OVERLAY, name: 'ovl' })).toMatchObject({ name: 'ovl', network: { networkType: 'overlay', vni: 5001, mtu: 1450, bridge: 'br-ovl-5001', ipam: { type: 'seine', ippools: ['ovl-a', 'ovl-b'] } } });
    expect(overlayBridgeName(16777215)).toBe('br-ovl-16777215');
    expect(overlayBridgeName(16777215).length).toBeLessThanOrEqual(15);
    expect(defaultBridge({ networkType: 'vlan' })).toBe('br-vlan');
  });

  it('keeps an explicit bridge and uplink; mtu is optional', () => {
    const { mtu: _m, ...noMtu } = VLAN;
    expect(seine({ ...noMtu, bridge: 'br-trunk2', uplink: 'ens5f1' }).network).toEqual({ networkType: 'vlan', vlan: 100, bridge: 'br-trunk2', uplink: 'ens5f1', ipam: { type: 'seine', ippools: ['vlan100'] } });
  });

  it('takes static IPAM (with or without default addresses) and delegates any other IPAM plugin', () => {
    expect(ipamOf({ ...VLAN, ipam: { type: 'static' } })).toEqual({ type: 'static', addresses: [], routes: [] });
    expect(ipamOf({ ...VLAN, ipam: { type: 'static', addresses: [{ address: '10.1.1.5/24', gateway: '10.1.1.1' }], routes: [{ dst: '0.0.0.0/0' }], dns: { nameservers: ['10.1.1.1'] } } })).toEqual({
      type: 'static',
      addresses: [{ address: '10.1.1.5/24', gateway: '10.1.1.1' }],
      routes: [{ dst: '0.0.0.0/0' }],
      dns: { nameservers: ['10.1.1.1'] },
    });
    const hl = { type: 'host-local', ranges: [[{ subnet: '10.1.1.0/24' }]] };
    expect(ipamOf({ ...VLAN, ipam: hl })).toEqual({ type: 'delegated', plugin: 'host-local', conf: hl });
  });

  it('accepts a conflist with Seine first and plugins chained after it', () => {
    const n = seine({ cniVersion: '1.0.0', plugins: [{ ...VLAN, cniVersion: undefined }, { type: 'tuning', sysctl: { 'net.ipv4.conf.IFNAME.arp_notify': '1' } }] });
    expect(n.name).toBe('vlan100');
    expect(n.list.plugins.map((p) => p.type)).toEqual(['seine', 'tuning']);
  });

  it.each([
    ['VLAN 4095', { ...VLAN, vlan: 4095 }, 'vlan: 4095 must be <= 4094'],
    ['VLAN 0', { ...VLAN, vlan: 0 }, 'vlan: 0 must be >= 1'],
    ['VLAN not an integer', { ...VLAN, vlan: 10.5 }, 'vlan: must be integer (got 10.5)'],
    ['VLAN network without VLAN', { ...VLAN, vlan: undefined }, 'vlan: is required'],
    ['VNI on a VLAN network', { ...VLAN, vni: 7 }, 'vni: not allowed for networkType vlan'],
    ['VNI too large', { ...OVERLAY, vni: 16777216 }, 'vni: 16777216 must be <= 16777215'],
    ['overlay without VNI', { ...OVERLAY, vni: undefined }, 'vni: is required'],
    ['overlay with VLAN', { ...OVERLAY, vlan: 5 }, 'vlan: not allowed for networkType overlay'],
    ['overlay with uplink', { ...OVERLAY, uplink: 'eth1' }, 'uplink: not allowed for networkType overlay'],
    ['MTU too small', { ...VLAN, mtu: 100 }, 'mtu: 100 must be >= 576'],
    ['MTU too large', { ...VLAN, mtu: 65000 }, 'mtu: 65000 must be <= 9216'],
    ['unknown network type', { ...VLAN, networkType: 'vxlan' }, 'networkType: must be one of "vlan", "overlay", "function" (got "vxlan")'],
    ['misspelt option', { ...VLAN, vlanId: 100 }, 'vlanId: unknown field'],
    ['no IPAM', { ...VLAN, ipam: undefined }, 'ipam: is required'],
    ['IPAM without type', { ...VLAN, ipam: { ippools: ['a'] } }, 'ipam.type: is required'],
    ['empty pool list', { ...VLAN, ipam: { type: 'seine', ippools: [] } }, 'ipam.ippools: must NOT have fewer than 1 items'],
    ['no pool list', { ...VLAN, ipam: { type: 'seine' } }, 'ipam.ippools: is required'],
    ['bad pool name', { ...VLAN, ipam: { type: 'seine', ippools: ['Pool_1'] } }, 'ipam.ippools[0]: "Pool_1" is not a valid object name'],
    ['unknown key in seine IPAM', { ...VLAN, ipam: { type: 'seine', ippools: ['a'], subnet: '10.0.0.0/24' } }, 'ipam.subnet: unknown field'],
    ['bad static address', { ...VLAN, ipam: { type: 'static', addresses: [{ address: '10.1.1.5' }] } }, 'ipam.addresses[0].address: "10.1.1.5" is not an IP address with prefix length'],
    ['bridge name too long', { ...VLAN, bridge: 'br-way-too-long-name' }, 'bridge: "br-way-too-long-name" is not valid'],
    ["the primary network's bridge", { ...VLAN, bridge: 'br-int' }, "bridge: br-int is the primary network's bridge"],
    ['an overlay-style bridge for VLAN', { ...VLAN, bridge: 'br-ovl-7' }, 'bridge: br-ovl-7 is a name reserved for overlay networks'],
    ['the VLAN bridge for an overlay', { ...OVERLAY, bridge: 'br-vlan' }, 'bridge: br-vlan is the default bridge of VLAN networks'],
    ['bad uplink name', { ...VLAN, uplink: 'eth/1' }, 'uplink: "eth/1" is not a valid interface name'],
    ['bad cniVersion', { ...VLAN, cniVersion: 'one' }, 'cniVersion: "one" is not valid'],
    ['Seine not first in a list', { cniVersion: '1.0.0', plugins: [{ type: 'tuning' }, VLAN] }, 'plugins[1]: a seine plugin must come first'],
    ['bad Seine plugin in a list', { cniVersion: '1.0.0', plugins: [{ ...VLAN, vlan: 9999 }] }, 'plugins[0].vlan: 9999 must be <= 4094'],
  ])('refuses %s', (_what, conf, problem) => {
    const e = errorOf(conf);
    expect(e.code).toBe(CniCode.InvalidNetworkConfig);
    expect(e.nad).toBe('telco/vlan100');
    expect(e.problems.join('\n')).toContain(problem);
    expect(e.message).toMatch(/^NetworkAttachmentDefinition telco\/vlan100: invalid spec.config: /);
  });

  it('lists every problem at once', () => {
    expect(errorOf({ ...VLAN, vlan: 4095, mtu: 1, bogus: true }).problems).toEqual(['bogus: unknown field', 'vlan: 4095 must be <= 4094', 'mtu: 1 must be >= 576']);
  });
});

describe('delegated and absent configs', () => {
  it('delegates any other plugin, naming it after the NAD when the config has no name', () => {
    const n = parse({ cniVersion: '0.4.0', type: 'macvlan', master: 'eth1', mode: 'bridge', ipam: { type: 'host-local', subnet: '10.9.0.0/24' } });
    expect(n).toMatchObject({ kind: 'delegated', name: 'vlan100', list: { name: 'vlan100', cniVersion: '0.4.0', plugins: [{ type: 'macvlan', master: 'eth1' }] } });
    expect(parse({ cniVersion: '1.0.0', name: 'br', plugins: [{ type: 'bridge', bridge: 'cni0' }, { type: 'portmap', capabilities: { portMappings: true } }] })).toMatchObject({
      kind: 'delegated',
      name: 'br',
      list: { plugins: [{ type: 'bridge' }, { type: 'portmap' }] },
    });
  });

  it('absent or empty spec.config means the node file of that name', () => {
    expect(parseNadConfig(undefined, ref)).toEqual({ kind: 'node-file', ref, name: 'vlan100' });
    expect(parseNadConfig('  ', ref)).toEqual({ kind: 'node-file', ref, name: 'vlan100' });
    expect(parseNad({ metadata: { name: 'x', namespace: 'n' }, spec: {} })).toEqual({ kind: 'node-file', ref: { namespace: 'n', name: 'x' }, name: 'x' });
    expect(parseNad({ metadata: { name: 'x', namespace: 'n' } })).toMatchObject({ kind: 'node-file' });
    expect(parseNad({ metadata: { name: 'x', namespace: 'n' }, spec: { config: JSON.stringify(VLAN) } })).toMatchObject({ kind: 'seine', name: 'x' });
  });

  it.each([
    ['broken JSON', '{"type":', CniCode.DecodeFailure, 'not valid JSON'],
    ['a JSON list', '[1]', CniCode.InvalidNetworkConfig, 'must be a JSON object'],
    ['no type', { cniVersion: '1.0.0', master: 'eth1' }, CniCode.InvalidNetworkConfig, 'type: is required'],
    ['empty plugin list', { cniVersion: '1.0.0', plugins: [] }, CniCode.InvalidNetworkConfig, 'plugins: must NOT have fewer than 1 items'],
    ['plugin without type', { cniVersion: '1.0.0', plugins: [{ type: 'bridge' }, {}] }, CniCode.InvalidNetworkConfig, 'plugins[1].type: is required'],
    ['unsupported version', { cniVersion: '0.2.0', type: 'macvlan' }, CniCode.IncompatibleVersion, 'offers ["0.2.0"]'],
  ])('refuses %s', (_what, conf, code, problem) => {
    const e = errorOf(conf);
    expect(e.code).toBe(code);
    expect(e.message).toContain(problem);
    expect(e.message).toContain('NetworkAttachmentDefinition telco/vlan100');
  });

  describe('from the node', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'seine-nad-'));
      writeFileSync(join(dir, '10-seine.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'seine', plugins: [{ type: 'seine-primary' }] }));
      writeFileSync(join(dir, '20-broken.conf'), '{');
      writeFileSync(join(dir, '30-mac.conf'), JSON.stringify({ cniVersion: '1.0.0', name: 'vlan100', type: 'macvlan', master: 'eth1' }));
      writeFileSync(join(dir, '40-own.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'own', plugins: [VLAN] }));
      writeFileSync(join(dir, '50-bad.conf'), JSON.stringify({ ...VLAN, name: 'bad', vlan: 5000 }));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('finds the config by network name, passing over invalid files', async () => {
      expect(await loadNodeNetworkConfig(dir, ref)).toMatchObject({ kind: 'delegated', name: 'vlan100', list: { plugins: [{ type: 'macvlan' }] } });
      expect(await loadNodeNetworkConfig(dir, { namespace: 'a', name: 'own' })).toMatchObject({ kind: 'seine', network: { bridge: 'br-vlan', vlan: 100 } });
    });

    it('fails clearly when there is none, or when it is invalid', async () => {
      await expect(loadNodeNetworkConfig(dir, { namespace: 'a', name: 'missing' })).rejects.toThrow(/NetworkAttachmentDefinition a\/missing: no spec.config and no node configuration: no CNI configuration named "missing" in .* \(skipped invalid files: cannot decode/);
      await expect(loadNodeNetworkConfig(dir, { namespace: 'a', name: 'bad' })).rejects.toThrow(/50-bad.conf: vlan: 5000 must be <= 4094/);
    });
  });
});

describe('function ports (networkType function)', () => {
  const FUNCTION = { cniVersion: '1.0.0', type: 'seine', networkType: 'function' };

  it('binds to the pod network without a network key or with an empty one; no IPAM, bridge or MTU of its own', () => {
    expect(seine(FUNCTION)).toMatchObject({ kind: 'seine', name: 'vlan100', network: { networkType: 'function' } });
    expect(seine(FUNCTION).network).toEqual({ networkType: 'function' });
    expect(seine({ ...FUNCTION, network: '' }).network).toEqual({ networkType: 'function' });
    // As the first plugin of a list too, with generic keys (capabilities, args) allowed.
    expect(seine({ cniVersion: '1.0.0', plugins: [{ ...FUNCTION, cniVersion: undefined, capabilities: { mac: true }, args: { x: 1 } }] }).network).toEqual({ networkType: 'function' });
  });

  it('refuses ipam with the reason, and every key that a function port takes from its network', () => {
    const e = errorOf({ ...FUNCTION, ipam: { type: 'seine', ippools: ['p'] } });
    expect(e.code).toBe(CniCode.InvalidNetworkConfig);
    expect(e.problems).toEqual([expect.stringMatching(/^ipam: not allowed for networkType function \(a function port has no addresses: it carries only the traffic a service chain steers into it/)]);
    expect(e.message).toContain('NetworkAttachmentDefinition telco/vlan100: invalid spec.config');
    expect(errorOf({ ...FUNCTION, vlan: 100, vni: 5, bridge: 'br-x', uplink: 'eth1', mtu: 1400 }).problems.map((p) => p.split(':')[0])).toEqual(['vlan', 'vni', 'bridge', 'uplink', 'mtu']);
    expect(errorOf({ cniVersion: '1.0.0', plugins: [{ ...FUNCTION, ipam: { type: 'static' } }] }).problems).toEqual([expect.stringMatching(/^plugins\[0\]\.ipam: not allowed for networkType function/)]);
  });

  it('binds to a Seine VLAN or overlay NAD named "<namespace>/<name>", in any namespace', () => {
    expect(seine({ ...FUNCTION, network: 'telco/vlan200' }).network).toEqual({ networkType: 'function', network: { namespace: 'telco', name: 'vlan200' } });
    expect(seine({ ...FUNCTION, network: 'edge/blue.overlay' }).network).toEqual({ networkType: 'function', network: { namespace: 'edge', name: 'blue.overlay' } });
    // Still refuses what the port takes from that network, with the binding given.
    expect(errorOf({ ...FUNCTION, network: 'telco/vlan200', vlan: 200, mtu: 1400 }).problems.map((p) => p.split(':')[0])).toEqual(['vlan', 'mtu']);
  });

  it('refuses a malformed network reference, and one naming the function NAD itself', () => {
    for (const bad of ['Telco/vlan100', 'telco/', '/vlan100', 'a/b/c', 'telco/VLAN', 'x'.repeat(64) + '/n']) {
      expect(errorOf({ ...FUNCTION, network: bad }).problems).toEqual([`network: ${JSON.stringify(bad)} is not "<namespace>/<name>" of a NetworkAttachmentDefinition (namespace: RFC 1123 label, name: RFC 1123 subdomain)`]);
    }
    expect(errorOf({ ...FUNCTION, network: 'vlan100' }).problems).toEqual([expect.stringMatching(/^network: "vlan100" is not "<namespace>\/<name>"/)]);
    expect(errorOf({ ...FUNCTION, network: 7 }).problems).toEqual(['network: must be string (got 7)']);
    // ref is telco/vlan100.
    expect(errorOf({ ...FUNCTION, network: 'telco/vlan100' }).problems).toEqual([
      'network: telco/vlan100 is this NetworkAttachmentDefinition; name the Seine VLAN or overlay network the port belongs to',
    ]);
    expect(errorOf({ cniVersion: '1.0.0', plugins: [{ ...FUNCTION, network: 'a/b/c' }] }).problems).toEqual([expect.stringMatching(/^plugins\[0\]\.network: "a\/b\/c" is not/)]);
  });

  it('keeps network for function ports, and ipam required for VLAN and overlay networks', () => {
    expect(errorOf({ ...VLAN, network: 'telco/x' }).problems).toEqual(['network: not allowed for networkType vlan']);
    const { ipam: _i, ...noIpam } = OVERLAY;
    expect(errorOf(noIpam).problems).toEqual(['ipam: is required']);
    expect(errorOf({ ...FUNCTION, networkType: 'chain' }).problems).toEqual([expect.stringMatching(/^networkType: must be one of "vlan", "overlay", "function"/)]);
  });

  it('supports mac but not ips (no IPAM)', () => {
    const n = seine(FUNCTION);
    expect([...supportedCapabilities(n)]).toEqual(['mac']);
    const sel = (v: string) => parseNetworksAnnotation(v, 'telco')[0]!;
    expect(() => checkCapabilities(n, sel('[{"name":"chain-port","interface":"in0","mac":"02:00:00:00:00:05"}]'))).not.toThrow();
    expect(() => checkCapabilities(n, sel('[{"name":"chain-port","interface":"in0","ips":["10.0.0.5/24"]}]'))).toThrow(/does not support ips/);
  });
});

describe('capabilities', () => {
  const sel = (v: string) => parseNetworksAnnotation(v, 'telco')[0]!;

  it("Seine's network supports ips and mac with its own IPAM; other requests need a plugin that declares them", () => {
    const n = seine(VLAN);
    expect([...supportedCapabilities(n)].sort()).toEqual(['ips', 'mac']);
    expect(() => checkCapabilities(n, sel('[{"name":"vlan100","ips":["10.0.0.5/24"],"mac":"02:00:00:00:00:05"}]'))).not.toThrow();
    let err: unknown;
    try {
      checkCapabilities(n, sel('[{"name":"vlan100","portMappings":[{"containerPort":80,"hostPort":8080}],"bandwidth":{"egressRate":10}}]'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CapabilityError);
    expect((err as CapabilityError).code).toBe(CniCode.UnsupportedField);
    expect((err as CapabilityError).unsupported).toEqual(['portMappings', 'bandwidth']);
    expect((err as CapabilityError).message).toContain('NetworkAttachmentDefinition telco/vlan100 does not support portMappings, bandwidth');
    const chained = seine({ cniVersion: '1.0.0', plugins: [VLAN, { type: 'portmap', capabilities: { portMappings: true } }] });
    expect(() => checkCapabilities(chained, sel('[{"name":"vlan100","portMappings":[{"containerPort":80}]}]'))).not.toThrow();
  });

  it('with a delegated IPAM, ips only when declared', () => {
    const hl = { ...VLAN, ipam: { type: 'host-local', subnet: '10.1.0.0/24' } };
    expect(() => checkCapabilities(seine(hl), sel('[{"name":"vlan100","ips":["10.1.0.5/24"]}]'))).toThrow(/does not support ips/);
    expect(() => checkCapabilities(seine({ ...hl, capabilities: { ips: true } }), sel('[{"name":"vlan100","ips":["10.1.0.5/24"]}]'))).not.toThrow();
  });

  it('a delegated network supports what its plugins declare', () => {
    const n = parse({ cniVersion: '1.0.0', type: 'macvlan', master: 'eth1', capabilities: { mac: true, ips: false } });
    if (n.kind === 'node-file') throw new Error('unexpected');
    expect([...supportedCapabilities(n)]).toEqual(['mac']);
    expect(() => checkCapabilities(n, sel('[{"name":"vlan100","mac":"02:00:00:00:00:05"}]'))).not.toThrow();
    expect(() => checkCapabilities(n, sel('[{"name":"vlan100","ips":["10.0.0.5/24"]}]'))).toThrow(CapabilityError);
    expect(() => checkCapabilities(n, sel('vlan100'))).not.toThrow();
  });
});

describe('bridges and uplinks', () => {
  it('takes the uplink from the node annotation, else the NAD, else the agent config', () => {
    const node = parseNodeUplinksAnnotation('{"br-vlan":"ens1f0"}');
    const agent = parseUplinkMap({ 'br-vlan': 'eth1', 'br-trunk2': 'eth2' }, 'agent config secondaryUplinks');
    expect(resolveUplink('br-vlan', { node, nad: 'eth9', agent })).toEqual({ uplink: 'ens1f0', source: 'node' });
    expect(resolveUplink('br-vlan', { nad: 'eth9', agent })).toEqual({ uplink: 'eth9', source: 'nad' });
    expect(resolveUplink('br-trunk2', { node, agent })).toEqual({ uplink: 'eth2', source: 'agent' });
    expect(resolveUplink('br-other', { node, agent })).toBeUndefined();
    expect(parseNodeUplinksAnnotation(undefined).size).toBe(0);
  });

  it('refuses malformed uplink maps', () => {
    expect(() => parseNodeUplinksAnnotation('{')).toThrow(/seine.dev\/secondary-uplinks: not valid JSON/);
    expect(() => parseNodeUplinksAnnotation('{"br-vlan":"a/b"}')).toThrow(/br-vlan: "a\/b" is not a valid interface name/);
    expect(() => parseNodeUplinksAnnotation('["eth1"]')).toThrow(/must be object/);
    expect(() => parseUplinkMap({ 'bad bridge name': 'eth1' }, 'x')).toThrow(/x: .*property name/);
  });

  it('finds networks that cannot share a bridge', () => {
    const net = (n: Partial<SegmentNetwork>): SegmentNetwork => ({ networkType: 'vlan', vlan: 1, bridge: 'br-vlan', ipam: { type: 'seine', ippools: ['p'] }, ...n });
    expect(
      bridgeConflicts([
        { nad: 'a/v1', network: net({}) },
        { nad: 'a/v2', network: net({ vlan: 2 }) },
        { nad: 'a/o1', network: net({ networkType: 'overlay', vni: 1, vlan: undefined, bridge: 'br-ovl-1' }) },
        { nad: 'a/o1b', network: net({ networkType: 'overlay', vni: 1, vlan: undefined, bridge: 'br-ovl-1' }) },
        // Function ports have no bridge of their own: never in conflict.
        { nad: 'a/f', network: { networkType: 'function' } satisfies SeineNetwork },
      ]),
    ).toEqual([]);
    expect(
      bridgeConflicts([
        { nad: 'a/v1', network: net({ bridge: 'br-x', uplink: 'eth1' }) },
        { nad: 'a/v2', network: net({ bridge: 'br-x', uplink: 'eth2' }) },
        { nad: 'a/o1', network: net({ networkType: 'overlay', vni: 1, bridge: 'br-x' }) },
        { nad: 'a/o2', network: net({ networkType: 'overlay', vni: 2, bridge: 'br-x' }) },
      ]),
    ).toEqual([
      'bridge br-x is used by VLAN network a/v1 and overlay network a/o1',
      'bridge br-x is used by overlay networks with VNIs 1, 2 (a/o1, a/o2)',
      'bridge br-x is given different uplinks eth1, eth2 by a/v1, a/v2',
    ]);
  });
});
