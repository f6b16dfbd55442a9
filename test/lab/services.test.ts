import { stringify } from 'yaml';
import { call, kubectl, startServer, type Json, type TestServer } from './apiserver/helpers.js';

// Services through the lab API server as kube-apiserver serves them: defaults, allocation and release of cluster
// IPs and node ports, type changes, the `kubernetes` Service, and validation in kube's words (through kubectl).

const PATH = '/api/v1/namespaces/default/services';

describe('Services in the lab API server', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startServer({ serviceCIDR: '10.96.0.0/24', advertise: { address: '192.0.2.10', port: 6443 } });
  });
  afterAll(async () => {
    await srv?.stop();
  });

  const create = async (name: string, spec: Json): Promise<Json> => {
    const r = await call(srv.api, 'POST', PATH, { apiVersion: 'v1', kind: 'Service', metadata: { name }, spec });
    if (r.status !== 201) throw new Error(`creating ${name}: ${r.status} ${r.text}`);
    return r.body;
  };
  /** kubectl apply of one Service: what the user sees on stderr. */
  const applyError = async (name: string, spec: Json): Promise<string> => {
    const r = await kubectl(srv, ['apply', '-f', '-'], stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name }, spec }));
    expect(r.code).not.toBe(0);
    return r.stderr.trim();
  };
  const merge = (name: string, body: Json): Promise<Json> => call(srv.api, 'PATCH', `${PATH}/${name}`, body, { 'content-type': 'application/merge-patch+json' });

  it('starts with the kubernetes Service on the first address, and its EndpointSlice at the advertised endpoint', async () => {
    const svc = (await call(srv.api, 'GET', `${PATH}/kubernetes`)).body;
    expect(svc.metadata.labels).toEqual({ component: 'apiserver', provider: 'kubernetes' });
    expect(svc.spec).toMatchObject({ type: 'ClusterIP', clusterIP: '10.96.0.1', clusterIPs: ['10.96.0.1'], ports: [{ name: 'https', port: 443, protocol: 'TCP', targetPort: 6443 }] });
    const slice = (await call(srv.api, 'GET', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes')).body;
    expect(slice).toMatchObject({ addressType: 'IPv4', endpoints: [{ addresses: ['192.0.2.10'], conditions: { ready: true } }], ports: [{ name: 'https', port: 6443, protocol: 'TCP' }] });
    expect(slice.metadata.labels).toEqual({ 'kubernetes.io/service-name': 'kubernetes' });
    expect((await call(srv.api, 'GET', '/api/v1/namespaces/default/endpoints/kubernetes')).body.subsets).toEqual([{ addresses: [{ ip: '192.0.2.10' }], ports: [{ name: 'https', port: 6443, protocol: 'TCP' }] }]);
  });

  it('without a reachable endpoint, the kubernetes Service targets the server port and has no EndpointSlice', async () => {
    const local = await startServer();
    try {
      const svc = (await call(local.api, 'GET', `${PATH}/kubernetes`)).body;
      expect(svc.spec).toMatchObject({ clusterIP: '10.96.0.1', ports: [{ port: 443, targetPort: local.api.port }] });
      expect((await call(local.api, 'GET', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes')).status).toBe(404);
    } finally {
      await local.stop();
    }
  });

  it('defaults what kube-apiserver defaults, by type', async () => {
    const lb = await create('lb', { type: 'LoadBalancer', selector: { app: 'x' }, ports: [{ port: 80 }], sessionAffinity: 'ClientIP' });
    expect(lb.spec).toEqual({
      type: 'LoadBalancer',
      selector: { app: 'x' },
      ports: [{ port: 80, protocol: 'TCP', targetPort: 80, nodePort: expect.any(Number) }],
      sessionAffinity: 'ClientIP',
      sessionAffinityConfig: { clientIP: { timeoutSeconds: 10800 } },
      clusterIP: expect.stringMatching(/^10\.96\.0\./),
      clusterIPs: [lb.spec.clusterIP],
      ipFamilies: ['IPv4'],
      ipFamilyPolicy: 'SingleStack',
      externalTrafficPolicy: 'Cluster',
      internalTrafficPolicy: 'Cluster',
      allocateLoadBalancerNodePorts: true,
    });
    const local = await create('lb-local', { type: 'LoadBalancer', externalTrafficPolicy: 'Local', allocateLoadBalancerNodePorts: false, ports: [{ port: 80, targetPort: 'http' }] });
    expect(local.spec.ports).toEqual([{ port: 80, protocol: 'TCP', targetPort: 'http' }]);
    expect(local.spec.healthCheckNodePort).toBeGreaterThanOrEqual(30000);
    // An update that leaves it out keeps it (kubectl replace of an older copy).
    const { healthCheckNodePort, ...rest } = local.spec;
    const put = await call(srv.api, 'PUT', `${PATH}/lb-local`, { ...local, spec: { ...rest, ports: [{ port: 81, targetPort: 'http' }] } });
    expect(put.status).toBe(200);
    expect(put.body.spec.healthCheckNodePort).toBe(healthCheckNodePort);
    const ext = await create('ext', { type: 'ExternalName', externalName: 'db.example.com' });
    expect(ext.spec).toEqual({ type: 'ExternalName', externalName: 'db.example.com', sessionAffinity: 'None' });
    const headless = await create('headless', { clusterIP: 'None', selector: { app: 'x' } });
    expect(headless.spec).toMatchObject({ clusterIP: 'None', clusterIPs: ['None'], internalTrafficPolicy: 'Cluster' });
    expect(headless.spec.externalTrafficPolicy).toBeUndefined();
  });

  it('allocates node ports on ClusterIP -> NodePort, drops them on NodePort -> ClusterIP, and releases everything on delete', async () => {
    const svc = await create('flip', { ports: [{ port: 80, name: 'http' }, { port: 53, name: 'dns', protocol: 'UDP' }] });
    const ip = svc.spec.clusterIP;
    const np = (await merge('flip', { spec: { type: 'NodePort' } })).body;
    expect(np.spec.clusterIP).toBe(ip);
    const nodePorts = np.spec.ports.map((p: Json) => p.nodePort);
    expect(nodePorts.every((n: number) => n >= 30000 && n <= 32767)).toBe(true);
    expect(np.spec.externalTrafficPolicy).toBe('Cluster');
    // Changing the type back: the node ports the client left as they were go, as does externalTrafficPolicy.
    const back = (await merge('flip', { spec: { type: 'ClusterIP' } })).body;
    expect(back.spec.ports.map((p: Json) => p.nodePort)).toEqual([undefined, undefined]);
    expect(back.spec.externalTrafficPolicy).toBeUndefined();
    // A node port the client adds to a ClusterIP Service is refused.
    const refused = await merge('flip', { spec: { ports: [{ port: 80, name: 'http', nodePort: 31000 }] } });
    expect(refused.body.message).toBe("Service \"flip\" is invalid: spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'");
    // Taken by another Service while it exists; free again once it is deleted.
    const holder = await create('holder', { type: 'NodePort', ports: [{ port: 1, nodePort: 31001 }], clusterIP: '10.96.0.200' });
    expect(holder.spec.ports[0].nodePort).toBe(31001);
    expect(await applyError('taker', { type: 'NodePort', ports: [{ port: 1, nodePort: 31001 }] })).toBe('The Service "taker" is invalid: spec.ports[0].nodePort: Invalid value: 31001: provided port is already allocated');
    expect(await applyError('taker', { clusterIP: '10.96.0.200', ports: [{ port: 1 }] })).toBe(
      'The Service "taker" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.0.200"}: failed to allocate IP 10.96.0.200: provided IP is already allocated',
    );
    expect((await call(srv.api, 'DELETE', `${PATH}/holder`)).status).toBe(200);
    const taker = await create('taker', { type: 'NodePort', clusterIP: '10.96.0.200', ports: [{ port: 1, nodePort: 31001 }] });
    expect(taker.spec).toMatchObject({ clusterIP: '10.96.0.200', ports: [{ nodePort: 31001 }] });
  });

  it('an ExternalName Service becomes a ClusterIP one with a fresh address, and back without it', async () => {
    const svc = await create('alias', { type: 'ExternalName', externalName: 'example.com' });
    expect(svc.spec.clusterIP).toBeUndefined();
    const cip = (await merge('alias', { spec: { type: 'ClusterIP', externalName: null, ports: [{ port: 80 }] } })).body;
    expect(cip.spec.clusterIP).toMatch(/^10\.96\.0\./);
    const back = (await merge('alias', { spec: { type: 'ExternalName', externalName: 'example.org' } })).body;
    expect(back.spec).toMatchObject({ type: 'ExternalName', externalName: 'example.org' });
    expect(back.spec.clusterIP).toBeUndefined();
    expect(back.spec.ipFamilies).toBeUndefined();
  });

  it('keeps the cluster IP immutable', async () => {
    const svc = await create('fixed', { ports: [{ port: 80 }] });
    const r = await merge('fixed', { spec: { clusterIP: '10.96.0.250' } });
    expect(r.body.message).toBe(`Service "fixed" is invalid: spec.clusterIPs[0]: Invalid value: []string{"10.96.0.250"}: may not change once set`);
    expect((await call(srv.api, 'GET', `${PATH}/fixed`)).body.spec.clusterIP).toBe(svc.spec.clusterIP);
  });

  it.each([
    ['an unknown type', { type: 'Magic', ports: [{ port: 1 }] }, 'spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'],
    ['no ports', { selector: { a: 'b' } }, 'spec.ports: Required value'],
    // targetPort defaults to the port, so it is refused too.
    ['port 0', { ports: [{ port: 0 }] }, '\n* spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive\n* spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive'],
    ['a bad protocol', { ports: [{ port: 1, protocol: 'ICMP' }] }, 'spec.ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"'],
    ['a targetPort out of range', { ports: [{ port: 1, targetPort: 70000 }] }, 'spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive'],
    ['a targetPort that is no IANA name', { ports: [{ port: 1, targetPort: 'no_such' }] }, 'spec.ports[0].targetPort: Invalid value: "no_such": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)'],
    ['an unnamed port among two', { ports: [{ port: 1, name: 'a' }, { port: 2 }] }, 'spec.ports[1].name: Required value'],
    ['a duplicate port name', { ports: [{ port: 1, name: 'a' }, { port: 2, name: 'a' }] }, 'spec.ports[1].name: Duplicate value: "a"'],
    [
      'a duplicate port and protocol',
      { ports: [{ port: 80, name: 'a' }, { port: 80, name: 'b', targetPort: 81 }] },
      'spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}',
    ],
    ['a node port out of range', { type: 'NodePort', ports: [{ port: 1, nodePort: 40000 }] }, 'spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-32767'],
    ['a node port on a ClusterIP Service', { ports: [{ port: 1, nodePort: 30500 }] }, "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
    ['a headless NodePort Service', { type: 'NodePort', clusterIP: 'None', ports: [{ port: 1 }] }, `spec.clusterIPs[0]: Invalid value: "None": may not be set to 'None' for NodePort services`],
    ['a cluster IP outside the range', { clusterIP: '10.97.0.1', ports: [{ port: 1 }] }, 'spec.clusterIPs: Invalid value: []string{"10.97.0.1"}: failed to allocate IP 10.97.0.1: the provided IP (10.97.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/24'],
    ['a bad session affinity', { sessionAffinity: 'Sticky', ports: [{ port: 1 }] }, 'spec.sessionAffinity: Unsupported value: "Sticky": supported values: "ClientIP", "None"'],
    [
      'an affinity timeout over a day',
      { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 86401 } }, ports: [{ port: 1 }] },
      'spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: must be greater than 0 and less than 86400',
    ],
    ['externalTrafficPolicy on a ClusterIP Service', { externalTrafficPolicy: 'Local', ports: [{ port: 1 }] }, 'spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services'],
    ['a bad externalTrafficPolicy', { type: 'NodePort', externalTrafficPolicy: 'Nearby', ports: [{ port: 1 }] }, 'spec.externalTrafficPolicy: Unsupported value: "Nearby": supported values: "Cluster", "Local"'],
    ['a bad internalTrafficPolicy', { internalTrafficPolicy: 'Nearby', ports: [{ port: 1 }] }, 'spec.internalTrafficPolicy: Unsupported value: "Nearby": supported values: "Cluster", "Local"'],
    ['an external IP that is no IP', { externalIPs: ['1.2.3'], ports: [{ port: 1 }] }, 'spec.externalIPs[0]: Invalid value: "1.2.3": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'],
    ['a loopback external IP', { externalIPs: ['127.0.0.2'], ports: [{ port: 1 }] }, 'spec.externalIPs[0]: Invalid value: "127.0.0.2": may not be in the loopback range (127.0.0.0/8, ::1/128)'],
    ['allocateLoadBalancerNodePorts on a NodePort Service', { type: 'NodePort', allocateLoadBalancerNodePorts: false, ports: [{ port: 1 }] }, "spec.allocateLoadBalancerNodePorts: Forbidden: may only be used when `type` is 'LoadBalancer'"],
    ['an ExternalName Service with a cluster IP', { type: 'ExternalName', externalName: 'a.b', clusterIP: '10.96.0.9' }, 'spec.clusterIPs: Forbidden: may not be set for ExternalName services'],
  ])('refuses %s', async (_what, spec, message) => {
    expect(await applyError('bad', spec)).toBe(`The Service "bad" is invalid: ${message}`);
  });
});
