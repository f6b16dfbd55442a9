import { validateChainSpec, isNetworkRef, describeProblems } from '../../src/chaining/api/validate.js';
import { chain } from './fixtures.js';

const hop = { name: 'fw', podSelector: {}, interfaces: { ingress: 'in0', egress: 'out0' } };
const problems = (spec: Parameters<typeof chain>[1]): string => describeProblems(validateChainSpec(chain('c', spec).spec));

describe('ServiceChain semantic validation', () => {
  it('accepts a full, valid chain', () => {
    expect(validateChainSpec(chain('c', {
      network: 'other/vlan100',
      priority: 0,
      classifier: {
        source: { podSelector: { matchLabels: { role: 'client' } }, namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'In', values: ['a'] }] } },
        destination: { ipBlock: { cidr: '10.1.0.0/16', except: ['10.1.2.0/24'] } },
        protocol: 'TCP',
        ports: [{ port: 80 }, { port: 8000, endPort: 8080 }],
      },
      hops: [hop, { ...hop, name: 'nat', interfaces: { ingress: 'eth1', egress: 'eth1' } }],
    }).spec)).toEqual([]);
  });

  it.each([
    ['duplicate hop names', { hops: [hop, { ...hop }] }, 'spec.hops[1].name: duplicate hop name "fw" (also spec.hops[0])'],
    ['ipBlock with a selector', { classifier: { source: { ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} } } }, 'spec.classifier.source.ipBlock: ipBlock cannot be combined with podSelector or namespaceSelector'],
    ['except outside cidr', { classifier: { destination: { ipBlock: { cidr: '10.1.0.0/16', except: ['10.2.0.0/24'] } } } }, 'spec.classifier.destination.ipBlock.except[0]: 10.2.0.0/24 is not inside cidr 10.1.0.0/16'],
    ['except the whole cidr', { classifier: { destination: { ipBlock: { cidr: '10.1.0.0/16', except: ['10.1.0.0/16'] } } } }, 'spec.classifier.destination.ipBlock.except[0]: 10.1.0.0/16 excludes all of cidr 10.1.0.0/16'],
    ['an IPv6 cidr', { classifier: { destination: { ipBlock: { cidr: 'fd00::/64' } } } }, 'spec.classifier.destination.ipBlock.cidr: "fd00::/64" is not an IPv4 CIDR (IPv6 is not supported yet)'],
    ['ports without protocol', { classifier: { destination: { podSelector: {} }, ports: [{ port: 80 }] } }, 'spec.classifier.ports: ports need protocol TCP, UDP or SCTP'],
    ['ports with ICMP', { classifier: { destination: { podSelector: {} }, protocol: 'ICMP', ports: [{ port: 80 }] } }, 'spec.classifier.ports: ports need protocol TCP, UDP or SCTP, not ICMP'],
    ['endPort below port', { classifier: { destination: { podSelector: {} }, protocol: 'UDP', ports: [{ port: 90, endPort: 80 }] } }, 'spec.classifier.ports[0].endPort: must not be less than port (90)'],
    ['no source nor destination', { classifier: { protocol: 'TCP' } }, 'spec.classifier: must give source, destination or both'],
    ['an empty peer', { classifier: { source: {} } }, 'spec.classifier.source: must give podSelector, namespaceSelector or ipBlock (leave the peer out to match any address)'],
    ['a network with two slashes', { network: 'a/b/c' }, 'spec.network: "a/b/c" is not "", "name" or "namespace/name" of a NetworkAttachmentDefinition'],
    ['In without values', { hops: [{ ...hop, podSelector: { matchExpressions: [{ key: 'app', operator: 'In' }] } }] }, 'spec.hops[0].podSelector.matchExpressions[0].values: must be non-empty for operator In'],
    ['a bad interface name', { hops: [{ ...hop, interfaces: { ingress: 'a/b', egress: 'out0' } }] }, 'spec.hops[0].interfaces.ingress: "a/b" is not an interface name'],
    ['no hops', { hops: [] }, 'spec.hops: at least one hop is required'],
    ['17 hops', { hops: Array.from({ length: 17 }, (_, i) => ({ ...hop, name: `h${i}` })) }, 'spec.hops: at most 16 hops'],
  ])('names the field for %s', (_what, spec, expected) => {
    expect(problems(spec as Parameters<typeof chain>[1])).toBe(expected);
  });

  it('reports every problem, not only the first', () => {
    const all = validateChainSpec(chain('c', { network: '/x', hops: [hop, hop], classifier: { source: { ipBlock: { cidr: '10.0.0.0/8' }, namespaceSelector: {} }, ports: [{ port: 1 }] } }).spec);
    expect(all.map((p) => p.field)).toEqual(['spec.network', 'spec.classifier.source.ipBlock', 'spec.classifier.ports', 'spec.hops[1].name']);
  });

  it('network references: "", name, or namespace/name', () => {
    expect(['', 'vlan100', 'ns/vlan100', 'ns/a.b'].every(isNetworkRef)).toBe(true);
    expect(['/x', 'x/', 'NS/x', 'a/b/c', 'x_y'].some(isNetworkRef)).toBe(false);
  });
});
