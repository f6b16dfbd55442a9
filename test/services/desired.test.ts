// The Service proxy's model: Services and EndpointSlices read with kube-proxy's semantics into a node's frontends
// and endpoints (nodeServices), and what the node's kernel must do for them (hostState). Pure functions, no I/O.
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { hostState } from '../../src/services/agent/feature.js';
import { NODEPORT_VIRTUAL_IP } from '../../src/services/host/index.js';
import { DEFAULT_AFFINITY_SECONDS, SERVICE_NAME_LABEL, SERVICE_PROXY_NAME_LABEL, nodeServices, proxied, ServiceStateMemo, type ProxyNode } from '../../src/services/model/desired.js';
import type { NodeServices, ServiceFrontend } from '../../src/services/model/types.js';

const node: ProxyNode = { name: 'node-1', podCidr: '10.244.1.0/24' };

interface Ep {
  ip: string;
  node?: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
  /** No conditions object at all. */
  bare?: boolean;
}

function service(name: string, spec: V1Service['spec'], opts: { namespace?: string; labels?: Record<string, string>; status?: V1Service['status'] } = {}): V1Service {
  return {
    metadata: { name, namespace: opts.namespace ?? 'default', ...(opts.labels ? { labels: opts.labels } : {}) },
    spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, protocol: 'TCP' }], ...spec },
    ...(opts.status ? { status: opts.status } : {}),
  };
}

function slice(svc: string, name: string, eps: Ep[], opts: { namespace?: string; ports?: V1EndpointSlice['ports']; addressType?: string } = {}): V1EndpointSlice {
  return {
    metadata: { name, namespace: opts.namespace ?? 'default', labels: { [SERVICE_NAME_LABEL]: svc } },
    addressType: opts.addressType ?? 'IPv4',
    ports: opts.ports ?? [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: eps.map((e) => ({
      addresses: [e.ip],
      ...(e.node ? { nodeName: e.node } : {}),
      ...(e.bare ? {} : { conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false } }),
    })),
  };
}

/** The endpoints of each frontend, `kind ip:port -> [ip:port(L)]` (L: a local pod), for compact expectations. */
function view(s: NodeServices): Record<string, string[]> {
  const eps = (l: ServiceFrontend['endpoints']): string[] => l.map((e) => `${e.ip}:${e.port}${e.local ? 'L' : ''}`);
  const out: Record<string, string[]> = {};
  for (const f of s.frontends) {
    out[`${f.kind} ${f.protocol}/${f.ip}:${f.port}`] = eps(f.endpoints);
    if (f.externalEndpoints) out[`${f.kind} ${f.protocol}/${f.ip}:${f.port} external`] = eps(f.externalEndpoints);
  }
  return out;
}

const local1 = { ip: '10.244.1.5', node: 'node-1' };
const local2 = { ip: '10.244.1.6', node: 'node-1' };
const remote1 = { ip: '10.244.2.5', node: 'node-2' };
const remote2 = { ip: '10.244.2.6', node: 'node-2' };

describe('nodeServices: which Services are proxied', () => {
  it.each<[string, V1Service, boolean]>([
    ['a ClusterIP Service', service('a', {}), true],
    ['a headless Service', service('a', { clusterIP: 'None' }), false],
    ['a Service without a cluster IP', service('a', { clusterIP: '' }), false],
    ['an ExternalName Service', service('a', { type: 'ExternalName', externalName: 'example.org' }), false],
    ['a Service of another proxy', service('a', {}, { labels: { [SERVICE_PROXY_NAME_LABEL]: 'other' } }), false],
    ['a Service with unrelated labels', service('a', {}, { labels: { app: 'web' } }), true],
  ])('%s: %s', (_what, svc, expected) => {
    expect(proxied(svc)).toBe(expected);
    const state = nodeServices([svc], [slice('a', 'a-1', [remote1])], node);
    expect(state.frontends.length > 0).toBe(expected);
  });

  it('leaves out ports of a protocol it does not know and IPv6 cluster IPs', () => {
    const svc = service('a', {
      clusterIP: 'fd00::10',
      clusterIPs: ['fd00::10', '10.96.0.10'],
      ports: [{ name: 'http', port: 80, protocol: 'TCP' }, { name: 'odd', port: 81, protocol: 'ICMP' }],
    });
    expect(view(nodeServices([svc], [slice('a', 'a-1', [remote1], { ports: [{ name: 'http', port: 8080 }, { name: 'odd', port: 8081, protocol: 'ICMP' }] })], node))).toEqual({
      'ClusterIP TCP/10.96.0.10:80': ['10.244.2.5:8080'],
    });
  });
});

describe('nodeServices: endpoints from EndpointSlices', () => {
  const svc = service('web', {});
  const frontendEps = (slices: V1EndpointSlice[], services: V1Service[] = [svc]): string[] | undefined => view(nodeServices(services, slices, node))['ClusterIP TCP/10.96.0.10:80'];

  it('marks endpoints in the pod CIDR as local, whatever their node name says', () => {
    expect(frontendEps([slice('web', 'w-1', [local1, remote1, { ip: '10.244.1.9', node: 'node-9' }])])).toEqual(['10.244.1.5:8080L', '10.244.1.9:8080L', '10.244.2.5:8080']);
  });

  it('ignores slices of another Service, of the same name in another namespace, and without the service-name label', () => {
    const unlabelled = slice('web', 'w-x', [{ ip: '10.244.9.9' }]);
    delete unlabelled.metadata!.labels;
    expect(
      frontendEps([
        slice('web', 'w-1', [remote1]),
        slice('other', 'o-1', [{ ip: '10.244.3.3' }]),
        slice('web', 'w-2', [{ ip: '10.244.4.4' }], { namespace: 'elsewhere' }),
        unlabelled,
      ]),
    ).toEqual(['10.244.2.5:8080']);
  });

  it('ignores IPv6 and FQDN slices and addresses that are not IPv4', () => {
    expect(
      frontendEps([
        slice('web', 'w-4', [remote1, { ip: 'fd00::5' }, { ip: '10.244.2' }]),
        slice('web', 'w-6', [{ ip: 'fd00::6' }], { addressType: 'IPv6' }),
        slice('web', 'w-f', [{ ip: 'example.org' }], { addressType: 'FQDN' }),
      ]),
    ).toEqual(['10.244.2.5:8080']);
  });

  it('matches slice ports by name and protocol, unnamed ports with unnamed ones, and skips slices without a valid port', () => {
    const multi = service('web', {
      ports: [
        { name: 'dns', port: 53, protocol: 'UDP' },
        { name: 'dns-tcp', port: 53, protocol: 'TCP' },
      ],
    });
    const slices = [
      slice('web', 'w-1', [remote1], { ports: [{ name: 'dns', port: 5353, protocol: 'UDP' }, { name: 'dns-tcp', port: 5354, protocol: 'TCP' }] }),
      // Same name, other protocol: not the UDP port's.
      slice('web', 'w-2', [remote2], { ports: [{ name: 'dns', port: 6000, protocol: 'TCP' }] }),
      // A port without a number, or out of range: nothing to send to.
      slice('web', 'w-3', [{ ip: '10.244.3.3' }], { ports: [{ name: 'dns', protocol: 'UDP' }] }),
      slice('web', 'w-4', [{ ip: '10.244.3.4' }], { ports: [{ name: 'dns', port: 70000, protocol: 'UDP' }] }),
    ];
    expect(view(nodeServices([multi], slices, node))).toEqual({
      'ClusterIP UDP/10.96.0.10:53': ['10.244.2.5:5353'],
      'ClusterIP TCP/10.96.0.10:53': ['10.244.2.5:5354'],
    });
    // An unnamed Service port takes the slice's unnamed port; protocol defaults to TCP on both sides.
    const unnamed = service('web', { ports: [{ port: 80 }] });
    expect(view(nodeServices([unnamed], [slice('web', 'w-1', [remote1], { ports: [{ port: 9090 }] }), slice('web', 'w-2', [remote2], { ports: [{ name: 'http', port: 8080 }] })], node))).toEqual({
      'ClusterIP TCP/10.96.0.10:80': ['10.244.2.5:9090'],
    });
  });

  it('deduplicates an endpoint listed by two slices, keeping the ready copy whichever comes first', () => {
    const notReady = { ...remote1, ready: false, serving: false };
    for (const slices of [
      [slice('web', 'w-1', [notReady]), slice('web', 'w-2', [remote1, remote2])],
      [slice('web', 'w-2', [remote1, remote2]), slice('web', 'w-1', [notReady])],
    ]) {
      expect(frontendEps(slices)).toEqual(['10.244.2.5:8080', '10.244.2.6:8080']);
    }
    // The same address on another port is another endpoint.
    expect(frontendEps([slice('web', 'w-1', [remote1]), slice('web', 'w-2', [remote1], { ports: [{ name: 'http', port: 8081 }] })])).toEqual(['10.244.2.5:8080', '10.244.2.5:8081']);
  });

  it.each<[string, Ep[], string[]]>([
    ['absent conditions count as ready', [{ ...remote1, bare: true }], ['10.244.2.5:8080']],
    ['ready endpoints only, while there are some', [remote1, { ...remote2, ready: false, serving: true, terminating: true }], ['10.244.2.5:8080']],
    ['not ready and not terminating: none', [{ ...remote1, ready: false, serving: false }], []],
    ['no ready one: the serving terminating ones', [{ ...remote1, ready: false, serving: true, terminating: true }, { ...remote2, ready: false, serving: false, terminating: true }], ['10.244.2.5:8080']],
    ['serving but not terminating is not a fallback', [{ ...remote1, ready: false, serving: true, terminating: false }], []],
  ])('%s', (_what, eps, expected) => {
    expect(frontendEps([slice('web', 'w-1', eps)])).toEqual(expected);
  });

  it('gives a Service without slices a frontend with no endpoints', () => {
    expect(frontendEps([])).toEqual([]);
  });
});

describe('nodeServices: traffic policies, node ports, external addresses, affinity', () => {
  const all = [local1, local2, remote1, remote2];
  const npSpec = (extra: V1Service['spec'] = {}): V1Service['spec'] => ({ type: 'NodePort', ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }], ...extra });

  it('internalTrafficPolicy Local: ClusterIP frontends get this node\'s endpoints only (none when it has none)', () => {
    const svc = service('web', npSpec({ internalTrafficPolicy: 'Local' }));
    expect(view(nodeServices([svc], [slice('web', 'w-1', all)], node))).toEqual({
      'ClusterIP TCP/10.96.0.10:80': ['10.244.1.5:8080L', '10.244.1.6:8080L'],
      // Node ports are external traffic: not concerned.
      [`NodePort TCP/${NODEPORT_VIRTUAL_IP}:30080`]: ['10.244.1.5:8080L', '10.244.1.6:8080L', '10.244.2.5:8080', '10.244.2.6:8080'],
    });
    const elsewhere = nodeServices([svc], [slice('web', 'w-1', [remote1])], node);
    expect(view(elsewhere)['ClusterIP TCP/10.96.0.10:80']).toEqual([]);
    // Endpoints on other nodes only: dropped here (as kube-proxy), not refused as a Service without endpoints is.
    expect(elsewhere.frontends.find((f) => f.kind === 'ClusterIP')!.reject).toBe(false);
    expect(hostState(elsewhere, { ip: '10.244.1.1', mac: '0a:00:00:00:00:01' }, '10.96.0.0/16').rejects).toEqual([]);
  });

  it('internalTrafficPolicy Local falls back to this node\'s serving terminating endpoints, not to other nodes\' ready ones', () => {
    const svc = service('web', { internalTrafficPolicy: 'Local' });
    const eps = [{ ...local1, ready: false, serving: true, terminating: true }, remote1];
    expect(view(nodeServices([svc], [slice('web', 'w-1', eps)], node))['ClusterIP TCP/10.96.0.10:80']).toEqual(['10.244.1.5:8080L']);
  });

  it('NodePort with externalTrafficPolicy Cluster: one frontend on the node port address, masqueraded, no external endpoints', () => {
    const state = nodeServices([service('web', npSpec())], [slice('web', 'w-1', [local1, remote1])], node);
    expect(view(state)).toEqual({
      'ClusterIP TCP/10.96.0.10:80': ['10.244.1.5:8080L', '10.244.2.5:8080'],
      [`NodePort TCP/${NODEPORT_VIRTUAL_IP}:30080`]: ['10.244.1.5:8080L', '10.244.2.5:8080'],
    });
    expect(state.nodePorts).toEqual([{ protocol: 'TCP', port: 30080, masquerade: true, reject: false }]);
    expect(state.healthChecks).toEqual([]);
  });

  it('externalTrafficPolicy Local with local endpoints: external endpoints are this node\'s, cluster traffic keeps every endpoint', () => {
    const svc = service('web', npSpec({ externalTrafficPolicy: 'Local', externalIPs: ['192.0.2.10'] }));
    const state = nodeServices([svc], [slice('web', 'w-1', all)], node);
    const everyone = ['10.244.1.5:8080L', '10.244.1.6:8080L', '10.244.2.5:8080', '10.244.2.6:8080'];
    const mine = ['10.244.1.5:8080L', '10.244.1.6:8080L'];
    expect(view(state)).toEqual({
      'ClusterIP TCP/10.96.0.10:80': everyone,
      [`NodePort TCP/${NODEPORT_VIRTUAL_IP}:30080`]: everyone,
      [`NodePort TCP/${NODEPORT_VIRTUAL_IP}:30080 external`]: mine,
      'External TCP/192.0.2.10:80': everyone,
      'External TCP/192.0.2.10:80 external': mine,
    });
    expect(state.nodePorts).toEqual([{ protocol: 'TCP', port: 30080, masquerade: false, reject: false }]);
  });

  it('externalTrafficPolicy Local without local endpoints: empty external endpoints (dropped), and the node port not rejected', () => {
    const svc = service('web', npSpec({ externalTrafficPolicy: 'Local' }));
    const state = nodeServices([svc], [slice('web', 'w-1', [remote1])], node);
    const np = state.frontends.find((f) => f.kind === 'NodePort')!;
    expect(np.endpoints.map((e) => e.ip)).toEqual(['10.244.2.5']);
    expect(np.externalEndpoints).toEqual([]);
    expect(state.nodePorts).toEqual([{ protocol: 'TCP', port: 30080, masquerade: false, reject: false }]);
  });

  it('a node port without any endpoint is rejected, with either policy', () => {
    for (const policy of ['Cluster', 'Local']) {
      const state = nodeServices([service('web', npSpec({ externalTrafficPolicy: policy }))], [slice('web', 'w-1', [{ ...remote1, ready: false, serving: false }])], node);
      expect(state.nodePorts).toEqual([{ protocol: 'TCP', port: 30080, masquerade: policy === 'Cluster', reject: true }]);
    }
  });

  it('health checks: externalTrafficPolicy Local Services with a health check port, with the local endpoint count of their busiest port', () => {
    const lb = service('lb', {
      type: 'LoadBalancer',
      externalTrafficPolicy: 'Local',
      healthCheckNodePort: 32000,
      ports: [
        { name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 },
        { name: 'dns', port: 53, protocol: 'UDP', nodePort: 30053 },
      ],
    });
    const slices = [
      slice('lb', 'lb-1', [local1, local2, remote1]),
      slice('lb', 'lb-2', [local1, remote1], { ports: [{ name: 'dns', port: 5353, protocol: 'UDP' }] }),
    ];
    const clusterPolicy = service('lbc', { type: 'LoadBalancer', externalTrafficPolicy: 'Cluster', healthCheckNodePort: 32001, ports: [{ name: 'http', port: 80, nodePort: 30081 }] });
    const noneHere = service('lbn', { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 32002, ports: [{ name: 'http', port: 80, nodePort: 30082 }] });
    const state = nodeServices([lb, clusterPolicy, noneHere], [...slices, slice('lbc', 'c-1', [local1]), slice('lbn', 'n-1', [remote1])], node);
    expect(state.healthChecks).toEqual([
      { service: 'default/lb', port: 32000, localEndpoints: 2 },
      { service: 'default/lbn', port: 32002, localEndpoints: 0 },
    ]);
  });

  it('external addresses: spec.externalIPs and IPv4 load balancer ingress IPs, any Service type; hostnames and IPv6 left out', () => {
    const svc = service('web', { externalIPs: ['192.0.2.10', '2001:db8::1'] }, { status: { loadBalancer: { ingress: [{ ip: '198.51.100.7' }, { hostname: 'lb.example.org' }, { ip: '2001:db8::2' }] } } });
    expect(view(nodeServices([svc], [slice('web', 'w-1', [remote1])], node))).toEqual({
      'ClusterIP TCP/10.96.0.10:80': ['10.244.2.5:8080'],
      'External TCP/192.0.2.10:80': ['10.244.2.5:8080'],
      'External TCP/198.51.100.7:80': ['10.244.2.5:8080'],
    });
  });

  it('LoadBalancer: cluster IP, node port and ingress frontends per port, with the Service port on the ingress address', () => {
    const lb = service('lb', { type: 'LoadBalancer', ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }] }, { status: { loadBalancer: { ingress: [{ ip: '198.51.100.7' }] } } });
    const state = nodeServices([lb], [slice('lb', 'l-1', [remote1])], node);
    expect(state.frontends.map((f) => `${f.kind} ${f.ip}:${f.port} ${f.service}`)).toEqual([
      'ClusterIP 10.96.0.10:80 default/lb:http',
      `NodePort ${NODEPORT_VIRTUAL_IP}:30080 default/lb:http`,
      'External 198.51.100.7:80 default/lb:http',
    ]);
    // A ClusterIP Service's stale nodePort (left from a type change) opens nothing.
    expect(nodeServices([service('c', { ports: [{ name: 'http', port: 80, nodePort: 30090 }] })], [], node).nodePorts).toEqual([]);
  });

  it.each<[string, V1Service['spec'], number | undefined]>([
    ['no affinity', {}, undefined],
    ['ClientIP with its timeout', { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 10 } } }, 10],
    ['ClientIP with kube-apiserver\'s default timeout', { sessionAffinity: 'ClientIP' }, DEFAULT_AFFINITY_SECONDS],
    ['None', { sessionAffinity: 'None', sessionAffinityConfig: { clientIP: { timeoutSeconds: 10 } } }, undefined],
  ])('session affinity, %s, on every frontend of the Service', (_what, spec, seconds) => {
    const state = nodeServices([service('web', { ...npSpec(), externalIPs: ['192.0.2.10'], ...spec })], [slice('web', 'w-1', [remote1])], node);
    expect(state.frontends).toHaveLength(3);
    for (const f of state.frontends) expect(f.affinitySeconds).toBe(seconds);
    if (seconds === undefined) for (const f of state.frontends) expect('affinitySeconds' in f).toBe(false);
  });
});

describe('nodeServices: determinism', () => {
  it('orders Services by namespace and name, endpoints by address, whatever the input order', () => {
    const services = [service('b', {}), service('a', { clusterIP: '10.96.0.11' }), service('a', { clusterIP: '10.96.0.12' }, { namespace: 'ns2' })];
    const slices = [
      slice('b', 'b-1', [remote2, local1]),
      slice('b', 'b-2', [remote1]),
      slice('a', 'a-1', [remote1]),
      slice('a', 'a-2', [remote2], { namespace: 'ns2' }),
    ];
    const first = nodeServices(services, slices, node);
    expect(first.frontends.map((f) => f.service)).toEqual(['default/a:http', 'default/b:http', 'ns2/a:http']);
    expect(first.frontends[1]!.endpoints.map((e) => e.ip)).toEqual(['10.244.1.5', '10.244.2.5', '10.244.2.6']);
    expect(nodeServices([...services].reverse(), [...slices].reverse(), node)).toEqual(first);
  });
});

describe('hostState', () => {
  const gw = { ip: '10.244.1.1', mac: '0a:00:c0:a8:4d:01' };

  it('routes external addresses in once each, rejects ClusterIP and external frontends without endpoints, masquerades external traffic of Cluster policy', () => {
    const services = [
      service('web', { type: 'LoadBalancer', externalIPs: ['192.0.2.10'], ports: [{ name: 'http', port: 80, nodePort: 30080 }, { name: 'dns', port: 53, protocol: 'UDP', nodePort: 30053 }] }, { status: { loadBalancer: { ingress: [{ ip: '198.51.100.7' }] } } }),
      service('local', { clusterIP: '10.96.0.20', type: 'LoadBalancer', externalTrafficPolicy: 'Local', externalIPs: ['192.0.2.10'], ports: [{ name: 'http', port: 8443, nodePort: 30443 }] }),
      service('empty', { clusterIP: '10.96.0.30', externalIPs: ['192.0.2.30'] }),
    ];
    const slices = [
      slice('web', 'w-1', [remote1], { ports: [{ name: 'http', port: 8080 }, { name: 'dns', port: 5353, protocol: 'UDP' }] }),
      slice('local', 'l-1', [local1]),
    ];
    const host = hostState(nodeServices(services, slices, node), gw, '10.96.0.0/12');
    expect(host).toEqual({
      gatewayIf: 'seine-gw0',
      gatewayIp: gw.ip,
      gatewayMac: gw.mac,
      serviceCidr: '10.96.0.0/12',
      externalAddresses: ['192.0.2.10', '192.0.2.30', '198.51.100.7'],
      rejects: [
        { ip: '10.96.0.30', protocol: 'TCP', port: 80 },
        { ip: '192.0.2.30', protocol: 'TCP', port: 80 },
      ],
      nodePorts: [
        { protocol: 'TCP', port: 30443, masquerade: false, reject: false },
        { protocol: 'TCP', port: 30080, masquerade: true, reject: false },
        { protocol: 'UDP', port: 30053, masquerade: true, reject: false },
      ],
      masqueradeExternal: [
        { ip: '192.0.2.30', protocol: 'TCP', port: 80 },
        { ip: '192.0.2.10', protocol: 'TCP', port: 80 },
        { ip: '198.51.100.7', protocol: 'TCP', port: 80 },
        { ip: '192.0.2.10', protocol: 'UDP', port: 53 },
        { ip: '198.51.100.7', protocol: 'UDP', port: 53 },
      ],
    });
  });

  it('is empty of rules for a node without Services', () => {
    expect(hostState({ frontends: [], nodePorts: [], healthChecks: [] }, gw, '10.96.0.0/12')).toEqual({
      gatewayIf: 'seine-gw0', gatewayIp: gw.ip, gatewayMac: gw.mac, serviceCidr: '10.96.0.0/12', externalAddresses: [], rejects: [], nodePorts: [], masqueradeExternal: [],
    });
  });
});

describe('ServiceStateMemo', () => {
  it('reuses a Service\'s share while its objects stay the same, and says when anything changed', () => {
    const memo = new ServiceStateMemo();
    const a = service('a', { ports: [{ name: 'http', port: 80, protocol: 'TCP' }] });
    const b = service('b', { ports: [{ name: 'http', port: 80, protocol: 'TCP' }] });
    const sa = slice('a', 'a-1', [local1]);
    const sb = slice('b', 'b-1', [remote1]);
    const first = nodeServices([a, b], [sa, sb], node, memo);
    expect(memo.changed).toBe(true);
    const again = nodeServices([b, a], [sb, sa], node, memo);
    expect(memo.changed).toBe(false);
    expect(again).toEqual(first);
    expect(again.frontends[0]).toBe(first.frontends[0]);
    // A replaced slice object (an update): that Service computed again, the other reused.
    const sb2 = slice('b', 'b-1', [remote1, remote2]);
    const changed = nodeServices([a, b], [sa, sb2], node, memo);
    expect(memo.changed).toBe(true);
    expect(changed).toEqual(nodeServices([a, b], [sa, sb2], node));
    expect(changed.frontends[0]).toBe(first.frontends[0]);
    // A Service gone is a change too.
    nodeServices([a], [sa, sb2], node, memo);
    expect(memo.changed).toBe(true);
    nodeServices([a], [sa, sb2], node, memo);
    expect(memo.changed).toBe(false);
  });
});
