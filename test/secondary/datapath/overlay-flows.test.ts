import { CookieOwner, decodeCookie, makeCookie, selectorMatches } from '../../../src/ovs/openflow/cookie.js';
import { renderFlow } from '../../../src/ovs/openflow/flow.js';
import { Ofctl } from '../../../src/ovs/openflow/ofctl.js';
import {
  OVERLAY_SYNC_SCOPE,
  OverlayTable,
  isDefaultRoute,
  learnedObject,
  learnedScope,
  overlayFlows,
  routeArgs,
  tunnelPortName,
  validateInterfaceSpec,
} from '../../../src/secondary/datapath/index.js';

describe('tunnel port names', () => {
  it('fit 15 characters for any VNI and spell the VNI and the IPv4 peer in hex', () => {
    expect(tunnelPortName(5001, '192.168.77.2')).toBe('v001389c0a84d02');
    expect(tunnelPortName(16777215, '255.255.255.255')).toBe('vffffffffffffff');
    expect(tunnelPortName(1, '10.0.0.1')).toHaveLength(15);
    expect(tunnelPortName(1, 'fd00::1')).toMatch(/^v000001[0-9a-f]{8}$/);
  });

  it('differ between VNIs and between peers (OVSDB port names are unique across bridges)', () => {
    const names = new Set<string>();
    for (const vni of [1, 5001, 5002, 0xffffff]) for (const peer of ['10.0.0.1', '10.0.0.2', '10.0.1.1']) names.add(tunnelPortName(vni, peer));
    expect(names.size).toBe(12);
  });

  it('refuse VNIs outside 1..2^24-1 and non-addresses', () => {
    expect(() => tunnelPortName(0, '10.0.0.1')).toThrow(RangeError);
    expect(() => tunnelPortName(1 << 24, '10.0.0.1')).toThrow(RangeError);
    expect(() => tunnelPortName(1, 'node-a')).toThrow();
  });
});

describe('overlay flows', () => {
  const flows = overlayFlows({ round: 7, localPorts: [4, 3], tunnelPorts: [9, 8] });
  const render = flows.map(renderFlow);
  const find = (re: RegExp): string[] => render.filter((l) => re.test(l));

  it('learn on every pod and tunnel port, marking tunnel ingress', () => {
    for (const p of [3, 4]) expect(find(new RegExp(`table=0,priority=100,.*in_port=${p},`))[0]).not.toContain('reg0');
    for (const t of [8, 9]) {
      const [line] = find(new RegExp(`table=0,priority=100,.*in_port=${t},`));
      expect(line).toContain('load:0x1->NXM_NX_REG1[16]');
      expect(line).toContain('load:0x1->reg0[0]');
      expect(line).toContain(`cookie=0x${makeCookie(CookieOwner.secondary, 7, learnedObject(t)).toString(16)}`);
    }
  });

  it('flood from pods to other pods and tunnels, from tunnels to pods only', () => {
    expect(find(/table=20,priority=200,.*reg0=0x0\/0x1,.*actions=output:3,output:4,output:8,output:9$/)).toHaveLength(1);
    expect(find(/table=20,priority=200,.*reg0=0x1\/0x1,.*actions=output:3,output:4$/)).toHaveLength(1);
    expect(find(/table=20,priority=300,.*reg0=0x1\/0x1,reg1=0x10000\/0x10000,actions=drop$/)).toHaveLength(1);
  });

  it('are accepted by ovs-ofctl', async () => {
    const canon = await new Ofctl('unused').parseFlows(render.map((l) => l.replace(/cookie=0x[0-9a-f]+,/, '')));
    expect(canon).toHaveLength(flows.length);
  });

  it('keep learned entries out of the sync scope and static flows of every round in it', () => {
    for (const f of flows) expect(selectorMatches(OVERLAY_SYNC_SCOPE, f.cookie!)).toBe(true);
    expect(selectorMatches(OVERLAY_SYNC_SCOPE, makeCookie(CookieOwner.secondary, 3, 0))).toBe(true);
    expect(selectorMatches(OVERLAY_SYNC_SCOPE, makeCookie(CookieOwner.secondary, 7, learnedObject(3)))).toBe(false);
    expect(selectorMatches(OVERLAY_SYNC_SCOPE, makeCookie(CookieOwner.primary, 7, 0))).toBe(false);
    expect(selectorMatches(learnedScope(3), makeCookie(CookieOwner.secondary, 9, learnedObject(3)))).toBe(true);
    expect(selectorMatches(learnedScope(3), makeCookie(CookieOwner.secondary, 9, learnedObject(4)))).toBe(false);
    expect(new Set(flows.map((f) => decodeCookie(f.cookie!).round))).toEqual(new Set([7]));
  });

  it('with no ports keep only the base flows', () => {
    const base = overlayFlows({ round: 1, localPorts: [], tunnelPorts: [] });
    expect(base.filter((f) => f.table === OverlayTable.Classifier && f.priority === 100)).toEqual([]);
    expect(base.map(renderFlow).filter((l) => l.includes('table=20,priority=200')).every((l) => l.endsWith('actions=drop'))).toBe(true);
  });
});

describe('pod interface spec', () => {
  const spec = { netns: '/var/run/netns/x', ifname: 'net1', hostIfname: 'h1', mac: '02:00:00:00:00:01', mtu: 1500, addresses: ['10.0.0.2/24'], routes: [] };

  it('renders routes via the interface', () => {
    expect(routeArgs({ dst: '0.0.0.0/0', gw: '10.0.0.1' }, 'net1').join(' ')).toBe('0.0.0.0/0 via 10.0.0.1 dev net1');
    expect(routeArgs({ dst: '10.8.0.0/16', priority: 50, mtu: 1400 }, 'net1').join(' ')).toBe('10.8.0.0/16 dev net1 metric 50 mtu 1400');
    expect(isDefaultRoute({ dst: '::/0' })).toBe(true);
    expect(isDefaultRoute({ dst: '0.0.0.0/0', table: 100 })).toBe(false);
  });

  it('refuses what would fail half way', () => {
    expect(() => validateInterfaceSpec(spec)).not.toThrow();
    expect(() => validateInterfaceSpec({ ...spec, hostIfname: 'a-name-too-long-x' })).toThrow(/hostIfname/);
    expect(() => validateInterfaceSpec({ ...spec, mac: '01:00:00:00:00:01' })).toThrow(/MAC/);
    expect(() => validateInterfaceSpec({ ...spec, addresses: ['10.0.0.300/24'] })).toThrow(/address/);
    expect(() => validateInterfaceSpec({ ...spec, routes: [{ dst: '0.0.0.0/0', gw: 'fd00::1' }] })).toThrow(/gateway/);
    expect(() => validateInterfaceSpec({ ...spec, routes: [{ dst: '0.0.0.0/0' }, { dst: '0.0.0.0/0', gw: '10.0.0.1' }] })).toThrow(/default/);
  });
});
