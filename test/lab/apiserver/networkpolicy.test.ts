import { parse as parseYaml, stringify } from 'yaml';
import { call, kubectl, startServer, type Json, type TestServer } from './helpers.js';

// NetworkPolicy through the lab API server as kube-apiserver serves it: v1 defaulting, validation
// with kube's field paths and messages (seen through the stock kubectl), and update validation.

const PATH = '/apis/networking.k8s.io/v1/namespaces/default/networkpolicies';

const policy = (name: string, spec: Json): Json => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: 'default' }, spec });

describe('NetworkPolicy in the lab API server', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startServer();
  });
  afterAll(async () => {
    await srv?.stop();
  });

  const create = async (name: string, spec: Json): Promise<Json> => {
    const r = await call(srv.api, 'POST', PATH, policy(name, spec));
    if (r.status !== 201) throw new Error(`creating ${name}: ${r.status} ${r.text}`);
    return r.body;
  };

  /** kubectl apply of one policy; resolves to what the user sees (exit code and stderr). */
  const apply = (name: string, spec: Json): Promise<{ code: number; stderr: string; stdout: string }> => kubectl(srv, ['apply', '-f', '-'], stringify(policy(name, spec)));

  describe('defaulting', () => {
    it('gives ports the TCP protocol and an ingress-only policy its policyTypes', async () => {
      const np = await create('web-ingress', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ ports: [{ port: 80 }, { port: 53, protocol: 'UDP' }] }] });
      expect(np.spec).toEqual({
        podSelector: { matchLabels: { app: 'web' } },
        ingress: [{ ports: [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }] }],
        policyTypes: ['Ingress'],
      });
    });

    it('adds Egress when there is an egress rule, but not for an empty egress list', async () => {
      const withEgress = await create('with-egress', { podSelector: {}, egress: [{ ports: [{ port: 'dns' }] }] });
      expect(withEgress.spec.policyTypes).toEqual(['Ingress', 'Egress']);
      expect(withEgress.spec.egress).toEqual([{ ports: [{ port: 'dns', protocol: 'TCP' }] }]);
      // An empty list is no rule: kube reads `egress: []` as absent (and does not store it).
      const emptyEgress = await create('empty-egress', { podSelector: {}, egress: [] });
      expect(emptyEgress.spec).toEqual({ podSelector: {}, policyTypes: ['Ingress'] });
      // A deny-all egress policy says so itself.
      const denyEgress = await create('deny-egress', { podSelector: {}, policyTypes: ['Egress'] });
      expect(denyEgress.spec.policyTypes).toEqual(['Egress']);
      const noSpec = await call(srv.api, 'POST', PATH, { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'no-spec' } });
      expect(noSpec.status).toBe(201);
      expect(noSpec.body.spec).toEqual({ podSelector: {}, policyTypes: ['Ingress'] });
    });

    it('shows the defaults through kubectl get -o yaml', async () => {
      const r = await apply('kubectl-defaults', { podSelector: { matchLabels: { app: 'db' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }], ports: [{ port: 5432 }] }], egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8' } }] }] });
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/networkpolicy.networking.k8s.io\/kubectl-defaults created/);
      const got = await kubectl(srv, ['get', 'networkpolicy', 'kubectl-defaults', '-o', 'yaml']);
      const np = parseYaml(got.stdout) as Json;
      expect(np.spec.policyTypes).toEqual(['Ingress', 'Egress']);
      expect(np.spec.ingress[0].ports).toEqual([{ port: 5432, protocol: 'TCP' }]);
      expect(np.metadata.generation).toBe(1);
    });
  });

  it('accepts a complex valid policy unchanged apart from its defaults', async () => {
    const spec = {
      podSelector: { matchLabels: { app: 'api' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['front', 'back'] }, { key: 'canary', operator: 'DoesNotExist' }] },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [
        {
          from: [
            { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } }, podSelector: { matchLabels: { app: 'prometheus' } } },
            { ipBlock: { cidr: '172.17.0.0/16', except: ['172.17.1.0/24', '172.17.2.128/25'] } },
            { ipBlock: { cidr: 'fd00::/8', except: ['fd00:1::/32'] } },
            { podSelector: {} },
          ],
          ports: [{ protocol: 'TCP', port: 8080 }, { protocol: 'UDP', port: 32000, endPort: 32768 }, { protocol: 'SCTP', port: 'metrics' }],
        },
      ],
      egress: [{ to: [{ namespaceSelector: {} }], ports: [{ port: 53, protocol: 'UDP' }, { port: 53 }] }, {}],
    };
    const np = await create('complex', spec);
    const expected = structuredClone(spec) as Json;
    expected.egress[0].ports[1].protocol = 'TCP';
    expect(np.spec).toEqual(expected);
    const r = await apply('complex-kubectl', spec);
    expect(r).toMatchObject({ code: 0, stderr: '' });
  });

  // What kubectl prints for each refused policy: kube's field path and message.
  const refused: Array<[string, Json, string[]]> = [
    ['a protocol other than TCP, UDP or SCTP', { ingress: [{ ports: [{ protocol: 'FOO', port: 80 }] }] }, ['spec.ingress[0].ports[0].protocol: Unsupported value: "FOO": supported values: "TCP", "UDP", "SCTP"']],
    ['port 0', { egress: [{ ports: [{ port: 0 }] }] }, ['spec.egress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive']],
    ['port 70000', { ingress: [{ ports: [{ port: 70000 }] }] }, ['spec.ingress[0].ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive']],
    [
      'a port name that is no IANA service name',
      { ingress: [{ ports: [{ port: 'Http_Port--long-name' }] }] },
      [
        'spec.ingress[0].ports[0].port: Invalid value: "Http_Port--long-name": must be no more than 15 characters',
        'spec.ingress[0].ports[0].port: Invalid value: "Http_Port--long-name": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)',
        'spec.ingress[0].ports[0].port: Invalid value: "Http_Port--long-name": must not contain consecutive hyphens',
      ],
    ],
    ['a numeric string as port', { ingress: [{ ports: [{ port: '80' }] }] }, ['spec.ingress[0].ports[0].port: Invalid value: "80": must contain at least one letter (a-z)']],
    ['endPort below port', { ingress: [{ ports: [{ port: 8000, endPort: 7000 }] }] }, ['spec.ingress[0].ports[0].endPort: Invalid value: 7000: must be greater than or equal to `port`']],
    ['endPort out of range', { ingress: [{ ports: [{ port: 8000, endPort: 70000 }] }] }, ['spec.ingress[0].ports[0].endPort: Invalid value: 70000: must be between 1 and 65535, inclusive']],
    ['endPort with a named port', { ingress: [{ ports: [{ port: 'http', endPort: 90 }] }] }, ['spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is non-numeric']],
    ['endPort without port', { egress: [{ ports: [{ endPort: 90 }] }] }, ['spec.egress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is not specified']],
    ['an empty peer', { ingress: [{ from: [{}] }] }, ['spec.ingress[0].from[0]: Required value: must specify a peer']],
    [
      'ipBlock with a selector',
      { egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8' }, namespaceSelector: {} }] }] },
      ['spec.egress[0].to[0]: Forbidden: may not specify both ipBlock and another peer'],
    ],
    ['an ipBlock without cidr', { ingress: [{ from: [{ ipBlock: { except: ['10.1.0.0/16'] } }] }] }, ['spec.ingress[0].from[0].ipBlock.cidr: Required value']],
    ['an invalid cidr', { ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/33' } }] }] }, ['spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.0/33": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)']],
    [
      'except entries outside, equal to, of another family than, or not a CIDR',
      { ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.1.0.0/24', '10.0.0.0/16', 'fd00::/64', '10.0.1.0'] } }] }] },
      [
        'spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "10.1.0.0/24": must be a strict subset of `cidr`',
        'spec.ingress[0].from[0].ipBlock.except[1]: Invalid value: "10.0.0.0/16": must be a strict subset of `cidr`',
        'spec.ingress[0].from[0].ipBlock.except[2]: Invalid value: "fd00::/64": must be a strict subset of `cidr`',
        'spec.ingress[0].from[0].ipBlock.except[3]: Invalid value: "10.0.1.0": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)',
      ],
    ],
    ['an unknown policy type', { policyTypes: ['Ingress', 'Outbound'] }, ['spec.policyTypes[1]: Unsupported value: "Outbound": supported values: "Ingress", "Egress"']],
    [
      'three policy types',
      { policyTypes: ['Ingress', 'Egress', 'Ingress'] },
      ['spec.policyTypes: Invalid value: []networking.PolicyType{"Ingress", "Egress", "Ingress"}: may not specify more than two policyTypes'],
    ],
    [
      'an invalid pod selector',
      { podSelector: { matchLabels: { 'app/x/y': 'web' }, matchExpressions: [{ key: 'tier', operator: 'In' }, { key: 'zone', operator: 'Exists', values: ['a'] }, { key: 'x', operator: 'Near', values: ['bad value!'] }] } },
      [
        'spec.podSelector.matchLabels: Invalid value: "app/x/y": prefix part must be a lowercase RFC 1123 subdomain',
        "spec.podSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
        "spec.podSelector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        'spec.podSelector.matchExpressions[2].operator: Invalid value: "Near": not a valid selector operator',
        'spec.podSelector.matchExpressions[2].values[0]: Invalid value: "bad value!": a valid label must be an empty string',
      ],
    ],
    [
      'an invalid peer selector',
      { egress: [{ to: [{ namespaceSelector: { matchLabels: { team: '-net' } } }] }] },
      ['spec.egress[0].to[0].namespaceSelector.matchLabels: Invalid value: "-net": a valid label must be an empty string'],
    ],
  ];

  it.each(refused)('refuses %s, and kubectl apply prints why', async (_what, spec, messages) => {
    const name = `bad-${Math.random().toString(36).slice(2, 8)}`;
    const r = await apply(name, spec);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`The NetworkPolicy "${name}" is invalid`);
    for (const m of messages) expect(r.stderr).toContain(m);
    // Through the API: a 422 Invalid Status whose causes name each field.
    const api = await call(srv.api, 'POST', PATH, policy(name, spec));
    expect(api.status).toBe(422);
    expect(api.body).toMatchObject({ kind: 'Status', reason: 'Invalid', details: { kind: 'NetworkPolicy', group: 'networking.k8s.io', name } });
    expect(api.body.details.causes).toHaveLength(messages.length);
    // Nothing was stored.
    expect((await call(srv.api, 'GET', `${PATH}/${name}`)).status).toBe(404);
  });

  it('refuses unknown fields with kubectl validation, warns without it', async () => {
    const spec = { podSelectr: { matchLabels: { app: 'web' } }, ingress: [{ ports: [{ prot: 80 }] }] };
    const r = await apply('typo', spec);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('NetworkPolicy in version "v1" cannot be handled as a NetworkPolicy: strict decoding error: unknown field "spec.ingress[0].ports[0].prot", unknown field "spec.podSelectr"');
    const warned = await kubectl(srv, ['apply', '--validate=warn', '-f', '-'], stringify(policy('typo', spec)));
    expect(warned.code).toBe(0);
    expect(warned.stderr).toContain('unknown field "spec.podSelectr"');
    const np = await call(srv.api, 'GET', `${PATH}/typo`);
    expect(np.body.spec).toEqual({ podSelector: {}, ingress: [{ ports: [{ protocol: 'TCP' }] }], policyTypes: ['Ingress'] });
    const wrongType = await call(srv.api, 'POST', PATH, policy('wrong-type', { ingress: 'everything' }));
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.message).toMatch(/cannot be handled as a NetworkPolicy: json: cannot unmarshal string into Go struct field spec.ingress/);
  });

  it('validates updates the same way, and keeps what an update may not re-check', async () => {
    const r = await apply('updated', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ ports: [{ port: 80 }] }] });
    expect(r.code).toBe(0);
    const bad = await apply('updated', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ ports: [{ port: 80, protocol: 'ICMP' }] }] });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('spec.ingress[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"');
    const current = (await call(srv.api, 'GET', `${PATH}/updated`)).body;
    expect(current.spec.ingress[0].ports).toEqual([{ port: 80, protocol: 'TCP' }]);
    // A replace without policyTypes gets them defaulted again, from the new rules.
    current.spec = { podSelector: {}, egress: [{ ports: [{ port: 443 }] }] };
    const put = await call(srv.api, 'PUT', `${PATH}/updated`, current);
    expect(put.status).toBe(200);
    expect(put.body.spec).toEqual({ podSelector: {}, egress: [{ ports: [{ port: 443, protocol: 'TCP' }] }], policyTypes: ['Ingress', 'Egress'] });
    expect(put.body.metadata.generation).toBe(2);
    put.body.spec.egress[0].to = [{ ipBlock: { cidr: '192.168.0.0/24', except: ['192.168.1.0/24'] } }];
    const badPut = await call(srv.api, 'PUT', `${PATH}/updated`, put.body);
    expect(badPut.status).toBe(422);
    expect(badPut.body.message).toBe('NetworkPolicy.networking.k8s.io "updated" is invalid: spec.egress[0].to[0].ipBlock.except[0]: Invalid value: "192.168.1.0/24": must be a strict subset of `cidr`');
  });
});
