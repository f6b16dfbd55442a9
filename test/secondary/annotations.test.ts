import type { CniResult } from '../../src/cni/types.js';
import {
  assignInterfaceNames,
  attachmentKey,
  buildNetworkStatus,
  capabilityArgs,
  diffAttachments,
  keepInterfaceNames,
  requestFingerprint,
  NETWORKS_ANNOTATION,
  NetworksAnnotationError,
  NetworkStatusError,
  parseNetworksAnnotation,
  parseNetworkStatus,
  serializeNetworkStatus,
  type NetworkSelection,
} from '../../src/secondary/annotations/index.js';

const parse = (v: string, ns = 'pods'): NetworkSelection[] => parseNetworksAnnotation(v, ns);
const brief = (sels: NetworkSelection[]): string[] => sels.map(attachmentKey);
/** What hot-plug computes when the old annotation's attachments are in place (each with its request recorded). */
const diffSelections = (before: NetworkSelection[], after: NetworkSelection[]) =>
  diffAttachments(
    before.map((s) => ({ ...s, request: requestFingerprint(s) })),
    after,
  );

/** The error's message, or a marker when parsing succeeded. */
function errorOf(v: string): string {
  try {
    parse(v);
    return 'no error';
  } catch (e) {
    if (!(e instanceof NetworksAnnotationError)) throw e;
    return e.message;
  }
}

describe('networks annotation: valid values', () => {
  it.each([
    ['empty', '', []],
    ['blank', '   ', []],
    ['one name', 'vlan100', ['pods/vlan100@net1']],
    ['comma form with namespaces, interfaces and spaces', 'vlan100, other/ovl@data0 ,vlan100@net9', ['pods/vlan100@net1', 'other/ovl@data0', 'pods/vlan100@net9']],
    ['same network twice gets two interfaces', 'a,a', ['pods/a@net1', 'pods/a@net2']],
    ['auto names count positions, not auto-named elements', 'a@x,b,c', ['pods/a@x', 'pods/b@net2', 'pods/c@net3']],
    ['dotted NAD name', 'ns1/my.net', ['ns1/my.net@net1']],
    ['empty JSON list', '[]', []],
    ['JSON with namespace and interface', '[{"name":"a","namespace":"n2","interface":"up0"},{"name":"b"}]', ['n2/a@up0', 'pods/b@net2']],
  ])('%s', (_what, value, expected) => {
    expect(brief(parse(value))).toEqual(expected);
  });

  it('carries every JSON field, normalized, and ignores unknown keys', () => {
    const [s] = parse(
      JSON.stringify([
        {
          name: 'vlan100',
          ips: ['10.10.0.5/24', 'fd00::5/64'],
          mac: '02-AA-bb-00-00-01',
          'default-route': ['10.10.0.1'],
          'cni-args': { foo: { bar: 1 } },
          portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
          bandwidth: { ingressRate: 1000, egressRate: 2000 },
          'infiniband-guid': 'C2:11:22:33:44:55:66:77',
          'ipam-claim-reference': 'claim-1',
          vlan: 200,
          somethingNew: true,
        },
      ]),
    );
    expect(s).toEqual({
      index: 0,
      namespace: 'pods',
      name: 'vlan100',
      interface: 'net1',
      autoNamed: true,
      ips: ['10.10.0.5/24', 'fd00::5/64'],
      mac: '02:aa:bb:00:00:01',
      defaultRoute: ['10.10.0.1'],
      cniArgs: { foo: { bar: 1 } },
      portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
      bandwidth: { ingressRate: 1000, egressRate: 2000 },
      infinibandGuid: 'c2:11:22:33:44:55:66:77',
      ipamClaimReference: 'claim-1',
    });
    expect(capabilityArgs(s!)).toEqual({
      ips: ['10.10.0.5/24', 'fd00::5/64'],
      mac: '02:aa:bb:00:00:01',
      portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
      bandwidth: { ingressRate: 1000, egressRate: 2000 },
      infinibandGUID: 'c2:11:22:33:44:55:66:77',
    });
  });

  it('treats null cni-args and an empty default-route as absent', () => {
    const [s] = parse('[{"name":"a","cni-args":null,"default-route":[]},{"name":"b","default-route":["10.0.0.1"]}]');
    expect(s).toEqual({ index: 0, namespace: 'pods', name: 'a', interface: 'net1', autoNamed: true });
  });

  it('a different default interface name moves the collision', () => {
    expect(brief(parseNetworksAnnotation('a@eth0', 'p', { defaultInterface: 'pod0' }))).toEqual(['p/a@eth0']);
    expect(() => parseNetworksAnnotation('a@pod0', 'p', { defaultInterface: 'pod0' })).toThrow(/"pod0" is the default network's interface/);
  });
});

describe('networks annotation: invalid values', () => {
  it.each([
    ['broken JSON', '[{"name":"a"', /not valid JSON/],
    ['JSON object instead of list', '{"name":"a"}', /must be a JSON list/],
    ['element not an object', '["a"]', /element 1: must be an object with a "name"/],
    ['missing name', '[{"namespace":"x"}]', /element 1: name: is required/],
    ['name of wrong type', '[{"name":5}]', /element 1: name: must be string/],
    ['name with a slash in JSON', '[{"name":"ns/a"}]', /element 1 \("pods\/ns\/a"\): name: "ns\/a" is not a valid object name/],
    ['upper-case name', 'Vlan100', /element 1 \("Vlan100"\): name: "Vlan100" is not a valid object name/],
    ['bad namespace', '[{"name":"a","namespace":"Bad_NS"}]', /namespace: "Bad_NS" is not a valid namespace name/],
    ['two slashes', 'a/b/c', /element 1 \("a\/b\/c"\): "a\/b\/c" has more than one "\/"/],
    ['two ats', 'a@x@y', /more than one "@"/],
    ['empty namespace', '/a', /empty namespace/],
    ['empty interface', 'a@', /empty interface name/],
    ['stray comma', 'a,,b', /element 2: is empty/],
    ['trailing comma', 'a,', /element 2: is empty/],
    ['bad MAC', '[{"name":"a","mac":"zz:00:00:00:00:01"}]', /element 1 \("pods\/a"\): mac: "zz:00:00:00:00:01" is not a unicast MAC address/],
    ['multicast MAC', '[{"name":"a","mac":"01:00:5e:00:00:01"}]', /mac: "01:00:5e:00:00:01" is not a unicast MAC/],
    ['short MAC', '[{"name":"a","mac":"02:00:00:00:01"}]', /is not a unicast MAC/],
    ['ips not CIDR', '[{"name":"a","ips":["10.1.1.5"]}]', /ips\[0\]: "10.1.1.5" is not an IP address with prefix length/],
    ['ips garbage', '[{"name":"a","ips":["10.1.1.300/24"]}]', /ips\[0\]: "10.1.1.300\/24"/],
    ['ips not a list', '[{"name":"a","ips":"10.1.1.5/24"}]', /ips: must be array/],
    ['ips twice', '[{"name":"a","ips":["10.1.1.5/24","10.1.1.5/16"]}]', /ips: "10.1.1.5\/16" is listed twice/],
    ['default-route not an IP', '[{"name":"a","default-route":["10.0.0.1/24"]}]', /default-route\[0\]: "10.0.0.1\/24" is not an IP address/],
    ['two IPv4 gateways', '[{"name":"a","default-route":["10.0.0.1","10.0.0.2"]}]', /default-route: at most one IPv4 gateway/],
    ['two default-routes', '[{"name":"a","default-route":["10.0.0.1"]},{"name":"b","default-route":["10.1.0.1"]}]', /element 2 \("pods\/b"\): default-route: only one element may carry it \(element 1 already does\)/],
    ['duplicate interface', 'a@data,b@data', /element 2 \("pods\/b"\): interface: "data" is already used by element 1/],
    ['explicit name taking an auto name', 'a,b@net1', /element 2 \("pods\/b"\): interface: "net1" is already used by element 1/],
    ['eth0 collision', '[{"name":"a","interface":"eth0"}]', /interface: "eth0" is the default network's interface/],
    ['interface too long', '[{"name":"a","interface":"abcdefghijklmnop"}]', /interface: "abcdefghijklmnop" is not a valid interface name/],
    ['interface with slash', '[{"name":"a","interface":"a/b"}]', /is not a valid interface name/],
    ['interface dot', '[{"name":"a","interface":"."}]', /interface: "\." is not a valid interface name/],
    ['interface dot-dot', '[{"name":"a","interface":".."}]', /is not a valid interface name/],
    ['interface with space', '[{"name":"a","interface":"a b"}]', /is not a valid interface name/],
    ['cni-args not an object', '[{"name":"a","cni-args":[1]}]', /cni-args: must be object or null \(got array\)/],
    ['port out of range', '[{"name":"a","portMappings":[{"containerPort":70000}]}]', /portMappings\[0\]\.containerPort: 70000 must be <= 65535/],
    ['port protocol', '[{"name":"a","portMappings":[{"containerPort":80,"protocol":"icmp"}]}]', /portMappings\[0\]\.protocol: must be one of "tcp", "udp", "sctp", "TCP", "UDP", "SCTP" \(got "icmp"\)/],
    ['negative bandwidth', '[{"name":"a","bandwidth":{"ingressRate":-1}}]', /bandwidth\.ingressRate: -1 must be >= 0/],
    ['bad infiniband GUID', '[{"name":"a","infiniband-guid":"c2:11"}]', /infiniband-guid: "c2:11" is not an InfiniBand GUID/],
    ['bad IPAM claim name', '[{"name":"a","ipam-claim-reference":"No Claim"}]', /ipam-claim-reference: "No Claim" is not a valid object name/],
  ])('%s', (_what, value, pattern) => {
    const msg = errorOf(value);
    expect(msg).toMatch(pattern);
    expect(msg.startsWith(`invalid ${NETWORKS_ANNOTATION} annotation: `)).toBe(true);
  });

  it('one bad element makes the whole annotation invalid, and every problem is listed', () => {
    let err: NetworksAnnotationError | undefined;
    try {
      parse('[{"name":"good"},{"name":"b","mac":"x"},{"name":"c","ips":["y"],"interface":"."}]');
    } catch (e) {
      err = e as NetworksAnnotationError;
    }
    expect(err).toBeInstanceOf(NetworksAnnotationError);
    expect(err!.problems.map((p) => [p.index, p.element])).toEqual([
      [1, '"pods/b"'],
      [2, '"pods/c"'],
      [2, '"pods/c"'],
    ]);
    expect(err!.message).toContain('element 2 ("pods/b"): mac:');
    expect(err!.message).toContain('element 3 ("pods/c"): interface:');
    expect(err!.message).toContain('element 3 ("pods/c"): ips[0]:');
  });

  it('a thousand invalid elements: every problem kept, the message names the first few and counts the rest', () => {
    const elements = Array.from({ length: 1000 }, (_, i) => ({ name: `net-${i}-${'x'.repeat(80)}`, mac: 'not-a-mac', ips: ['nope'] }));
    let err: NetworksAnnotationError | undefined;
    try {
      parse(JSON.stringify(elements));
    } catch (e) {
      err = e as NetworksAnnotationError;
    }
    expect(err).toBeInstanceOf(NetworksAnnotationError);
    expect(err!.problems).toHaveLength(2000);
    expect(err!.message).toMatch(new RegExp(`^invalid ${NETWORKS_ANNOTATION} annotation: 2000 problems: element 1 .*; and 1995 more$`));
    // Fits the 1024 bytes kube-apiserver allows an Event message, with room for a prefix.
    expect(Buffer.byteLength(err!.message)).toBeLessThan(1000);
  });
});

describe('assignInterfaceNames', () => {
  it('numbers by position and keeps requested names', () => {
    const out = assignInterfaceNames([
      { namespace: 'a', name: 'x' },
      { namespace: 'a', name: 'y', interface: 'data' },
      { namespace: 'a', name: 'x' },
    ]);
    expect(out.map((s) => [s.interface, s.index])).toEqual([
      ['net1', 0],
      ['data', 1],
      ['net3', 2],
    ]);
  });

  it('refuses collisions', () => {
    expect(() => assignInterfaceNames([{ namespace: 'a', name: 'x', interface: 'net2' }, { namespace: 'a', name: 'y' }])).toThrow(/element 2 \("a\/y"\): interface: "net2" is already used by element 1/);
  });
});

describe('diffSelections', () => {
  it('adds, removes, keeps, and reports changed requests by NAD + interface', () => {
    const before = parse('[{"name":"a","interface":"x"},{"name":"b","interface":"y"},{"name":"c","interface":"z"},{"name":"d","interface":"w","ips":["10.0.0.5/24"]}]');
    const after = parse('[{"name":"b","interface":"y"},{"name":"e","interface":"x"},{"name":"d","interface":"w","ips":["10.0.0.6/24"]},{"name":"b","interface":"y2"}]');
    const d = diffSelections(before, after);
    expect(brief(d.add)).toEqual(['pods/e@x', 'pods/b@y2']);
    // Last first: teardown runs in reverse.
    expect(brief(d.remove)).toEqual(['pods/c@z', 'pods/a@x']);
    expect(brief(d.unchanged)).toEqual(['pods/b@y']);
    expect(d.changed.map((c) => [attachmentKey(c.from), c.from.ips, c.to.ips])).toEqual([['pods/d@w', ['10.0.0.5/24'], ['10.0.0.6/24']]]);
  });

  it('ignores positions and key order', () => {
    const a = parse('[{"name":"x","interface":"i1","cni-args":{"p":1,"q":2}}]');
    const b = parse('[{"name":"y","interface":"i0"},{"interface":"i1","cni-args":{"q":2,"p":1},"name":"x"}]');
    const d = diffSelections(a, b);
    expect(brief(d.unchanged)).toEqual(['pods/x@i1']);
    expect(brief(d.add)).toEqual(['pods/y@i0']);
  });

  it('auto-named interfaces keep their names when an earlier element goes', () => {
    const shifted = diffSelections(parse('a,b'), parse('b'));
    expect(brief(shifted.remove)).toEqual(['pods/a@net1']);
    expect(brief(shifted.add)).toEqual([]);
    expect(brief(shifted.unchanged)).toEqual(['pods/b@net2']);
  });

  it('a new auto-named element takes its position if free, else the lowest free net<N>', () => {
    // x's position (net2) is b's now, so x takes the lowest free name (net1, freed by a); c's own net3 is free.
    expect(brief(diffSelections(parse('a,b'), parse('b,x,c')).add)).toEqual(['pods/x@net1', 'pods/c@net3']);
    // b keeps net2; c at position 2 wants net2 -> lowest free is net1.
    expect(brief(diffSelections(parse('a,b'), parse('b,c')).add)).toEqual(['pods/c@net1']);
  });

  it('the same network twice keeps each interface; explicit names always win', () => {
    const d = diffSelections(parse('a,a'), parse('a'));
    expect(brief(d.unchanged)).toEqual(['pods/a@net1']);
    expect(brief(d.remove)).toEqual(['pods/a@net2']);
    // An explicit net2 for another network displaces the auto-named one there.
    const e = diffSelections(parse('a,b'), parse('[{"name":"b"},{"name":"c","interface":"net2"}]'));
    expect(brief(e.remove)).toEqual(['pods/b@net2', 'pods/a@net1']);
    expect(brief(e.add).sort()).toEqual(['pods/b@net1', 'pods/c@net2']);
  });

  it('the request fingerprint ignores key order and interface, and sees ips, mac and cni-args', () => {
    const [a] = parse('[{"name":"x","mac":"02:00:00:00:00:01","cni-args":{"p":1,"q":2}}]');
    const [b] = parse('[{"cni-args":{"q":2,"p":1},"mac":"02:00:00:00:00:01","name":"x","interface":"other"}]');
    expect(requestFingerprint(a!)).toBe(requestFingerprint(b!));
    expect(requestFingerprint(a!)).toMatch(/^[A-Za-z0-9_-]{22}$/);
    for (const v of ['[{"name":"x","mac":"02:00:00:00:00:02","cni-args":{"p":1,"q":2}}]', '[{"name":"x","mac":"02:00:00:00:00:01","cni-args":{"p":1}}]', '[{"name":"x","mac":"02:00:00:00:00:01","cni-args":{"p":1,"q":2},"ips":["10.0.0.1/24"]}]']) {
      expect(requestFingerprint(parse(v)[0]!)).not.toBe(requestFingerprint(a!));
    }
  });

  it('diffAttachments: a changed fingerprint is a change; an unknown one is kept as is', () => {
    const [want] = parse('[{"name":"a","ips":["10.0.0.6/24"]}]');
    const rec = { namespace: 'pods', name: 'a', interface: 'net1' };
    expect(diffAttachments([{ ...rec, request: 'old' }], [want!]).changed.map((c) => [c.from.interface, c.to.ips])).toEqual([['net1', ['10.0.0.6/24']]]);
    expect(brief(diffAttachments([{ ...rec, request: requestFingerprint(want!) }], [want!]).unchanged)).toEqual(['pods/a@net1']);
    expect(brief(diffAttachments([rec], [want!]).unchanged)).toEqual(['pods/a@net1']);
  });

  it('keepInterfaceNames maps an unchanged annotation onto itself', () => {
    const sel = parse('a,b,a');
    expect(brief(keepInterfaceNames(sel, sel))).toEqual(brief(sel));
  });

  it('an empty annotation removes everything', () => {
    expect(brief(diffSelections(parse('a,b'), parse('')).remove)).toEqual(['pods/b@net2', 'pods/a@net1']);
  });
});

describe('network-status', () => {
  const primary: CniResult = {
    cniVersion: '1.0.0',
    interfaces: [{ name: 'veth1234' }, { name: 'eth0', mac: '0a:58:0a:f4:01:05', sandbox: '/var/run/netns/p' }],
    ips: [{ address: '10.244.1.5/24', gateway: '10.244.1.1', interface: 1 }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.244.1.1' }],
    dns: { nameservers: ['10.96.0.10'], search: ['pods.svc.cluster.local'] },
  };
  const secondary = (ifname: string, ip: string, mac: string): CniResult => ({
    cniVersion: '1.0.0',
    interfaces: [
      { name: `h-${ifname}` },
      { name: ifname, mac, sandbox: '/var/run/netns/p' },
    ],
    ips: [
      { address: ip, interface: 1 },
      { address: '192.0.2.9/32', interface: 0 },
    ],
  });

  it('lists the default network first, then each attachment with its interface, IPs without prefix and MAC', () => {
    const sels = parse('[{"name":"vlan100"},{"name":"ovl","namespace":"x","interface":"ovl0"}]');
    const status = buildNetworkStatus({ name: 'seine', result: primary }, [
      { selection: sels[0]!, result: secondary('net1', '10.10.0.2/24', '02:00:00:00:00:01') },
      { selection: sels[1]!, result: secondary('ovl0', '10.20.0.2/24', '02:00:00:00:00:02'), deviceInfo: { type: 'pci', version: '1.1.0', pci: { 'pci-address': '0000:03:00.1' } } },
    ]);
    expect(status).toEqual([
      { name: 'seine', interface: 'eth0', ips: ['10.244.1.5'], mac: '0a:58:0a:f4:01:05', default: true, dns: { nameservers: ['10.96.0.10'], search: ['pods.svc.cluster.local'] }, 'default-route': ['10.244.1.1'] },
      { name: 'pods/vlan100', interface: 'net1', ips: ['10.10.0.2'], mac: '02:00:00:00:00:01' },
      { name: 'x/ovl', interface: 'ovl0', ips: ['10.20.0.2'], mac: '02:00:00:00:00:02', 'device-info': { type: 'pci', version: '1.1.0', pci: { 'pci-address': '0000:03:00.1' } } },
    ]);
    expect(parseNetworkStatus(serializeNetworkStatus(status))).toEqual(status);
  });

  it('puts default-route on the attachment that requested it instead', () => {
    const sels = parse('[{"name":"vlan100","default-route":["10.10.0.1"]}]');
    const status = buildNetworkStatus({ name: 'seine', result: primary }, [{ selection: sels[0]!, result: secondary('net1', '10.10.0.2/24', '02:00:00:00:00:01') }]);
    expect(status[0]!['default-route']).toBeUndefined();
    expect(status[1]!['default-route']).toEqual(['10.10.0.1']);
  });

  it('copes with minimal results (no interfaces, IPs without interface index)', () => {
    const sels = parse('a');
    const status = buildNetworkStatus({ name: 'seine', interface: 'eth0', result: { cniVersion: '0.4.0', ips: [{ address: '10.244.1.7/24' }] } }, [{ selection: sels[0]!, result: { cniVersion: '1.0.0' } }]);
    expect(status).toEqual([
      { name: 'seine', interface: 'eth0', ips: ['10.244.1.7'], default: true },
      { name: 'pods/a', interface: 'net1' },
    ]);
  });

  it('reads the annotation back and refuses what is not one', () => {
    expect(parseNetworkStatus(undefined)).toEqual([]);
    expect(parseNetworkStatus('')).toEqual([]);
    expect(() => parseNetworkStatus('{')).toThrow(NetworkStatusError);
    expect(() => parseNetworkStatus('[{"interface":"eth0"}]')).toThrow(/\[0\]\.name: is required/);
    expect(() => parseNetworkStatus('[{"name":"a","ips":["10.0.0.1/24"]}]')).toThrow(/ips\[0\]: "10.0.0.1\/24" is not an IP address/);
  });
});
