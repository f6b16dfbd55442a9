import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { call, eventually, kubectl, startServer, type Json, type TestServer } from './helpers.js';

// kubectl's client-side validation against the lab API server: the items of a `kind: List` are
// validated against /openapi/v2 (kubectl asks for it in gnostic's protobuf encoding), for built-in
// kinds with a schema and for every CRD, with the messages kubectl prints against a real cluster.

const ROOT = join(import.meta.dirname, '../../..');
const CRDS = readdirSync(join(ROOT, 'crds')).map((f) => readFileSync(join(ROOT, 'crds', f), 'utf8'));

const POLICY = (spec: string): string => `  - apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: allow-web, namespace: default}
    spec:
${spec}`;

const CHAIN = (spec: string): string => `  - apiVersion: crd.seine.dev/v1alpha1
    kind: ServiceChain
    metadata: {name: web, namespace: default}
    spec:
${spec}`;

const POD = (image: string): string => `  - apiVersion: v1
    kind: Pod
    metadata: {name: client, namespace: default}
    spec:
      containers:
      - {name: main, image: ${image}, env: [{name: MODE, value: lab}]}
`;

const CONFIGMAP = (data: string): string => `  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: settings, namespace: default, labels: {team: net}}
    ${data}
`;

const list = (...items: string[]): string => `apiVersion: v1\nkind: List\nitems:\n${items.join('')}`;

const GOOD_POLICY = `      podSelector: {matchLabels: {app: web}}
      ingress:
      - from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]
        ports: [{port: 80}]
`;

const GOOD_CHAIN = `      classifier:
        source: {podSelector: {matchLabels: {role: client}}}
        protocol: TCP
        ports: [{port: 80}]
      hops:
      - {name: firewall, podSelector: {matchLabels: {cnf: firewall}}, interfaces: {ingress: in0, egress: out0}, mode: Transparent, failurePolicy: FailClosed}
`;

const HINT = 'if you choose to ignore these errors, turn validation off with --validate=false';

describe('kubectl client-side validation (OpenAPI v2)', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startServer();
    const r = await kubectl(srv, ['apply', '-f', '-'], CRDS.join('\n---\n'));
    if (r.code !== 0) throw new Error(`applying the project's CRDs: ${r.stderr}`);
    await eventually(async () => (await kubectl(srv, ['get', 'servicechains,ippools,network-attachment-definitions'])).code === 0, 30_000, "the project's CRDs to be served");
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it('serves /openapi/v2 as protobuf and JSON, and refuses other types with 406', async () => {
    const pb = await call(srv.api, 'GET', '/openapi/v2', undefined, { accept: 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf' });
    expect(pb.status).toBe(200);
    expect(pb.headers['content-type']).toBe('application/com.github.proto-openapi.spec.v2.v1.0+protobuf');
    const json = await call(srv.api, 'GET', '/openapi/v2', undefined, { accept: 'application/json' });
    expect(json.status).toBe(200);
    expect(json.body.swagger).toBe('2.0');
    expect(json.body.definitions['io.k8s.api.networking.v1.NetworkPolicy']['x-kubernetes-group-version-kind']).toEqual([{ group: 'networking.k8s.io', version: 'v1', kind: 'NetworkPolicy' }]);
    const chain = json.body.definitions['dev.seine.crd.v1alpha1.ServiceChain'];
    expect(chain.properties.metadata).toEqual({ $ref: '#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta' });
    expect(chain.properties.spec.required).toEqual(['classifier', 'hops']);
    // No strategic merge in PATCH: kubectl computes apply patches from its own types, which know merge keys.
    const patchTypes = Object.values(json.body.paths as Json).flatMap((p: Json) => p.patch?.consumes ?? []);
    expect(patchTypes.length).toBeGreaterThan(0);
    expect(patchTypes).not.toContain('application/strategic-merge-patch+json');
    const html = await call(srv.api, 'GET', '/openapi/v2', undefined, { accept: 'text/html' });
    expect(html.status).toBe(406);
  });

  it('applies a List of a NetworkPolicy, a ServiceChain and a Pod, and re-applies it changed', async () => {
    const first = await kubectl(srv, ['apply', '-f', '-'], list(POLICY(GOOD_POLICY), CHAIN(GOOD_CHAIN), POD('busybox:1.36')));
    expect(first.stderr).toBe('');
    expect(first.stdout).toMatch(/networkpolicy.networking.k8s.io\/allow-web created/);
    expect(first.stdout).toMatch(/servicechain.crd.seine.dev\/web created/);
    expect(first.stdout).toMatch(/pod\/client created/);
    const np = JSON.parse((await kubectl(srv, ['get', 'networkpolicy', 'allow-web', '-o', 'json'])).stdout);
    expect(np.spec.policyTypes).toEqual(['Ingress']);
    // The pod's apply patch still merges containers by name (kubectl's compiled-in merge keys).
    const second = await kubectl(srv, ['apply', '-f', '-'], list(POLICY(GOOD_POLICY.replace('port: 80', 'port: 8080')), CHAIN(GOOD_CHAIN), POD('busybox:1.37')));
    expect(second.stderr).toBe('');
    expect(second.stdout).toMatch(/networkpolicy.networking.k8s.io\/allow-web configured/);
    // Schema defaults inside the chain's lists make kubectl's JSON merge patch resend them.
    expect(second.stdout).toMatch(/servicechain.crd.seine.dev\/web (unchanged|configured)/);
    expect(second.stdout).toMatch(/pod\/client configured/);
    const pod = JSON.parse((await kubectl(srv, ['get', 'pod', 'client', '-o', 'json'])).stdout);
    expect(pod.spec.containers).toHaveLength(1);
    expect(pod.spec.containers[0]).toMatchObject({ name: 'main', image: 'busybox:1.37', env: [{ name: 'MODE', value: 'lab' }] });
  });

  it("passes every manifest the project ships, as one List", async () => {
    const files = ['manifests/seine.yml', ...readdirSync(join(ROOT, 'manifests/examples')).map((f) => `manifests/examples/${f}`), ...readdirSync(join(ROOT, 'crds')).map((f) => `crds/${f}`)];
    const items = files.flatMap((f) => parseAllDocuments(readFileSync(join(ROOT, f), 'utf8')).map((d) => d.toJSON() as Json)).filter((o) => o && o.kind);
    expect(items.length).toBeGreaterThan(10);
    const r = await kubectl(srv, ['create', '--dry-run=client', '-o', 'name', '-f', '-'], stringify({ apiVersion: 'v1', kind: 'List', items }));
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toHaveLength(items.length);
  });

  it('reports a NetworkPolicy field typo in a List as kubectl does, and --validate=false lets it through', async () => {
    const typo = list(POLICY(GOOD_POLICY.replace('podSelector', 'podSelectr')).replace('allow-web', 'typo-web'));
    const r = await kubectl(srv, ['apply', '-f', '-'], typo);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('error validating data: ValidationError(NetworkPolicy.spec): unknown field "podSelectr" in io.k8s.api.networking.v1.NetworkPolicySpec');
    expect(r.stderr).toContain(HINT);
    expect((await call(srv.api, 'GET', '/apis/networking.k8s.io/v1/namespaces/default/networkpolicies/typo-web')).status).toBe(404);
    const off = await kubectl(srv, ['apply', '--validate=false', '-f', '-'], typo);
    expect(off.code).toBe(0);
    const np = (await call(srv.api, 'GET', '/apis/networking.k8s.io/v1/namespaces/default/networkpolicies/typo-web')).body;
    expect(np.spec.podSelector).toEqual({});
  });

  it('reports typos at the top and in metadata of any built-in kind in a List', async () => {
    const r = await kubectl(srv, ['apply', '-f', '-'], list(CONFIGMAP('dat: {mode: lab}'), CONFIGMAP('data: {mode: lab}').replace('labels:', 'labes:')));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('ValidationError(ConfigMap): unknown field "dat" in io.k8s.api.core.v1.ConfigMap');
    expect(r.stderr).toContain('ValidationError(ConfigMap.metadata): unknown field "labes" in io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta');
    const wrongType = await kubectl(srv, ['apply', '-f', '-'], list(CONFIGMAP('immutable: "yes"')));
    expect(wrongType.stderr).toContain('ValidationError(ConfigMap.immutable): invalid type for io.k8s.api.core.v1.ConfigMap.immutable: got "string", expected "boolean"');
    expect((await call(srv.api, 'GET', '/api/v1/namespaces/default/configmaps/settings')).status).toBe(404);
    const good = await kubectl(srv, ['apply', '-f', '-'], list(CONFIGMAP('data: {mode: lab}\n    immutable: true')));
    expect(good).toMatchObject({ code: 0, stderr: '' });
  });

  it('reports missing required fields and typos in a ServiceChain of a List', async () => {
    const noCidr = list(POLICY(GOOD_POLICY.replace('cidr: 10.0.0.0/8, ', '')).replace('allow-web', 'no-cidr'));
    const r1 = await kubectl(srv, ['apply', '-f', '-'], noCidr);
    expect(r1.code).not.toBe(0);
    expect(r1.stderr).toContain('ValidationError(NetworkPolicy.spec.ingress[0].from[0].ipBlock): missing required field "cidr" in io.k8s.api.networking.v1.IPBlock');
    const chainTypo = list(CHAIN(GOOD_CHAIN.replace('hops:', 'hopz:')).replace('name: web', 'name: typo'));
    const r2 = await kubectl(srv, ['apply', '-f', '-'], chainTypo);
    expect(r2.code).not.toBe(0);
    expect(r2.stderr).toContain('ValidationError(ServiceChain.spec): unknown field "hopz" in dev.seine.crd.v1alpha1.ServiceChain.spec');
    expect(r2.stderr).toContain('ValidationError(ServiceChain.spec): missing required field "hops" in dev.seine.crd.v1alpha1.ServiceChain.spec');
  });
});
