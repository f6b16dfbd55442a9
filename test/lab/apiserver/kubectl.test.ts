import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { call, eventually, kubectl, startServer, type Json, type TestServer } from './helpers.js';

// The stock kubectl binary against the server, with a generated kubeconfig and a private cache.

const NODE = `apiVersion: v1
kind: Node
metadata:
  name: lab-node1
  labels: {node-role.kubernetes.io/worker: ""}
status:
  addresses: [{type: InternalIP, address: 172.28.0.11}, {type: Hostname, address: lab-node1}]
  conditions: [{type: Ready, status: "True", reason: KubeletReady, message: ok}]
  nodeInfo: {kubeletVersion: v1.32.4, osImage: Debian GNU/Linux 12, kernelVersion: 6.1.0, containerRuntimeVersion: seine://0.1.0}
`;

const POD = (image: string): string => `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  labels: {app: web}
spec:
  nodeName: lab-node1
  containers:
  - name: nginx
    image: ${image}
    ports: [{containerPort: 80, name: http}]
    env: [{name: MODE, value: lab}]
`;

const CONFIGMAP = (value: string): string => `apiVersion: v1
kind: ConfigMap
metadata: {name: settings, labels: {team: net}}
data: {mode: "${value}", keep: "yes"}
`;

const CRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: networkattachments.seine.example}
spec:
  group: seine.example
  scope: Namespaced
  names: {plural: networkattachments, singular: networkattachment, kind: NetworkAttachment, shortNames: [nad]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: VLAN, type: integer, jsonPath: .spec.vlan}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [vlan]
            properties:
              vlan: {type: integer, minimum: 1, maximum: 4094}
              mtu: {type: integer, default: 1500}
`;

describe('kubectl against the API server', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startServer();
  });
  afterAll(async () => {
    await srv?.stop();
  });

  const ok = async (args: string[], input?: string): Promise<string> => {
    const r = await kubectl(srv, args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };

  it('talks to the server over TLS with the token from the generated kubeconfig', async () => {
    const out = await ok(['version', '-o', 'json']);
    expect(JSON.parse(out).serverVersion).toMatchObject({ major: '1', minor: '32' });
    const ns = await ok(['get', 'namespaces']);
    expect(ns).toMatch(/^NAME\s+STATUS\s+AGE/);
    expect(ns).toMatch(/kube-system\s+Active/);
  });

  it('creates, lists and describes nodes and pods', async () => {
    expect(await ok(['create', '-f', '-'], NODE)).toMatch(/node\/lab-node1 created/);
    const nodes = await ok(['get', 'nodes', '-o', 'wide']);
    const [header, row] = nodes.trim().split('\n');
    expect(header).toMatch(/^NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION\s+INTERNAL-IP\s+EXTERNAL-IP\s+OS-IMAGE\s+KERNEL-VERSION\s+CONTAINER-RUNTIME$/);
    expect(row).toMatch(/^lab-node1\s+Ready\s+worker\s+\d+s\s+v1\.32\.4\s+172\.28\.0\.11\s+<none>\s+Debian GNU\/Linux 12\s+6\.1\.0\s+seine:\/\/0\.1\.0$/);
    expect(await ok(['apply', '-f', '-'], POD('nginx:1.25'))).toMatch(/pod\/web created/);
    const wide = await ok(['get', 'pods', '-A', '-o', 'wide']);
    expect(wide.split('\n')[0]).toMatch(/^NAMESPACE\s+NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE\s+NOMINATED NODE\s+READINESS GATES$/);
    expect(wide).toMatch(/default\s+web\s+0\/1\s+Pending\s+0\s+\d+s\s+<none>\s+lab-node1\s+<none>\s+<none>/);
    const json = JSON.parse(await ok(['get', 'pods', '-A', '-o', 'json']));
    expect(json.kind).toBe('List');
    expect(json.items.map((p: Json) => p.metadata.name)).toEqual(['web']);
    const yaml = parseYaml(await ok(['get', 'pods', '-A', '-o', 'yaml'])) as Json;
    expect(yaml.items[0].spec.containers[0].image).toBe('nginx:1.25');
    await call(srv.api, 'POST', '/api/v1/namespaces/default/events', {
      apiVersion: 'v1', kind: 'Event', metadata: { name: 'web.1' }, type: 'Normal', reason: 'Scheduled', message: 'Successfully assigned default/web to lab-node1',
      involvedObject: { apiVersion: 'v1', kind: 'Pod', name: 'web', namespace: 'default', uid: json.items[0].metadata.uid },
      source: { component: 'seine-scheduler' }, firstTimestamp: new Date().toISOString(), lastTimestamp: new Date().toISOString(), count: 1,
    });
    const described = await ok(['describe', 'pod', 'web']);
    expect(described).toMatch(/^Name:\s+web$/m);
    expect(described).toMatch(/^Node:\s+lab-node1/m);
    expect(described).toMatch(/Image:\s+nginx:1\.25/);
    expect(described).toMatch(/Normal\s+Scheduled\s+\S+\s+seine-scheduler\s+Successfully assigned default\/web to lab-node1/);
  });

  it('applies, re-applies with a change, and creates', async () => {
    expect(await ok(['apply', '-f', '-'], CONFIGMAP('a'))).toMatch(/configmap\/settings created/);
    expect(await ok(['apply', '-f', '-'], CONFIGMAP('a'))).toMatch(/configmap\/settings unchanged/);
    expect(await ok(['apply', '-f', '-'], CONFIGMAP('b'))).toMatch(/configmap\/settings configured/);
    const cm = JSON.parse(await ok(['get', 'configmap', 'settings', '-o', 'json']));
    expect(cm.data).toEqual({ mode: 'b', keep: 'yes' });
    expect(cm.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']).toContain('"mode":"b"');
    // A strategic merge patch from apply keeps containers merged by name.
    expect(await ok(['apply', '-f', '-'], POD('nginx:1.26'))).toMatch(/pod\/web configured/);
    const pod = JSON.parse(await ok(['get', 'pod', 'web', '-o', 'json']));
    expect(pod.spec.containers).toHaveLength(1);
    expect(pod.spec.containers[0]).toMatchObject({ name: 'nginx', image: 'nginx:1.26', env: [{ name: 'MODE', value: 'lab' }] });
    const file = join(srv.dir, 'cm.yaml');
    await import('node:fs').then((fs) => fs.writeFileSync(file, CONFIGMAP('x').replace('settings', 'created')));
    expect(await ok(['create', '-f', file])).toMatch(/configmap\/created created/);
    const again = await kubectl(srv, ['create', '-f', file]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/AlreadyExists.*configmaps "created" already exists/);
  });

  it('labels and annotates, refusing to overwrite without --overwrite', async () => {
    expect(await ok(['label', 'pod', 'web', 'tier=front'])).toMatch(/pod\/web labeled/);
    const clash = await kubectl(srv, ['label', 'pod', 'web', 'tier=back']);
    expect(clash.code).not.toBe(0);
    expect(clash.stderr).toMatch(/'tier' already has a value \(front\), and --overwrite is false/);
    await ok(['label', 'pod', 'web', 'tier=back', '--overwrite']);
    await ok(['annotate', 'pod', 'web', 'seine.example/network=blue']);
    await ok(['label', 'configmap', 'settings', 'team-']);
    const pod = JSON.parse(await ok(['get', 'pod', 'web', '-o', 'json']));
    expect(pod.metadata.labels).toEqual({ app: 'web', tier: 'back' });
    expect(pod.metadata.annotations['seine.example/network']).toBe('blue');
    expect(await ok(['get', 'pods', '-l', 'tier=back', '-o', 'name'])).toBe('pod/web\n');
    expect(JSON.parse(await ok(['get', 'configmap', 'settings', '-o', 'json'])).metadata.labels).toBeUndefined();
  });

  it('streams changes with get -w', async () => {
    const child = spawn('kubectl', ['--kubeconfig', srv.kubeconfig, '--cache-dir', join(srv.dir, 'kube-cache'), 'get', 'configmaps', '-w'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<void>((r) => child.on('exit', () => r()));
    try {
      await eventually(() => /settings/.test(out), 30_000, 'initial list');
      await call(srv.api, 'POST', '/api/v1/namespaces/default/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'watched' }, data: { a: '1', b: '2' } });
      await eventually(() => /^watched\s+2\s+\d+s$/m.test(out), 30_000, 'watch line for the new configmap');
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    expect(out.split('\n')[0]).toMatch(/^NAME\s+DATA\s+AGE$/);
  });

  it("creates objects with kubectl's generators, which send protobuf", async () => {
    const generators = [
      ['create', 'namespace', 'gen-ns'],
      ['create', 'configmap', 'gen-cm', '--from-literal=a=b', '--from-literal=c=d'],
      ['create', 'secret', 'generic', 'gen-secret', '--from-literal=password=s3cret'],
      ['create', 'serviceaccount', 'gen-sa'],
      ['create', 'service', 'nodeport', 'gen-svc', '--tcp=8080:80'],
      ['create', 'deployment', 'gen-deploy', '--image=nginx:1.25', '--replicas=2', '--port=80'],
      ['create', 'role', 'gen-role', '--verb=get,list', '--resource=pods'],
      ['create', 'clusterrole', 'gen-cr', '--verb=list', '--resource=nodes'],
      ['create', 'rolebinding', 'gen-rb', '--role=gen-role', '--user=alice', '--serviceaccount=default:gen-sa'],
      ['create', 'clusterrolebinding', 'gen-crb', '--clusterrole=gen-cr', '--group=ops'],
    ];
    // Everything kubectl means to send (its client-side dry run) must arrive.
    const contained = (want: Json, got: Json, path: string): void => {
      if (want === null || want === undefined) return;
      if (typeof want !== 'object') {
        expect({ path, value: got }).toEqual({ path, value: want });
        return;
      }
      for (const k of Object.keys(want)) contained(want[k], got?.[k], `${path}.${k}`);
    };
    for (const g of generators) {
      const dry = JSON.parse(await ok([...g, '--dry-run=client', '-o', 'json']));
      const real = JSON.parse(await ok([...g, '-o', 'json']));
      delete dry.metadata.creationTimestamp;
      delete dry.status;
      contained(dry, real, dry.kind);
    }
    const svc = JSON.parse(await ok(['get', 'service', 'gen-svc', '-o', 'json']));
    expect(svc.spec.ports[0]).toMatchObject({ port: 8080, targetPort: 80, protocol: 'TCP', nodePort: expect.any(Number) });
    expect(Buffer.from(JSON.parse(await ok(['get', 'secret', 'gen-secret', '-o', 'json'])).data.password, 'base64').toString()).toBe('s3cret');
  });

  it('deletes', async () => {
    expect(await ok(['delete', 'configmap', 'created'])).toMatch(/configmap "created" deleted/);
    // Graceful: a scheduled pod waits for its kubelet; --wait=false returns at once.
    expect(await ok(['delete', 'pod', 'web', '--wait=false'])).toMatch(/pod "web" deleted/);
    expect(await ok(['get', 'pod', 'web', '--no-headers'])).toMatch(/Terminating/);
    expect(await ok(['delete', 'pod', 'web', '--grace-period=0', '--force'])).toMatch(/pod "web" force deleted/);
    const gone = await kubectl(srv, ['get', 'pod', 'web']);
    expect(gone.stderr).toMatch(/NotFound.*pods "web" not found/);
  });

  it('applies a CRD, then custom objects of it; invalid ones are rejected naming the field', async () => {
    expect(await ok(['apply', '-f', '-'], CRD)).toMatch(/customresourcedefinition.apiextensions.k8s.io\/networkattachments.seine.example created/);
    await ok(['wait', '--for', 'condition=Established', 'crd/networkattachments.seine.example', '--timeout=10s']);
    const good = 'apiVersion: seine.example/v1\nkind: NetworkAttachment\nmetadata: {name: blue}\nspec: {vlan: 100}\n';
    expect(await ok(['apply', '-f', '-'], good)).toMatch(/networkattachment.seine.example\/blue created/);
    expect(await ok(['apply', '-f', '-'], good.replace('vlan: 100', 'vlan: 101'))).toMatch(/networkattachment.seine.example\/blue configured/);
    const list = await ok(['get', 'nad']);
    expect(list).toMatch(/^NAME\s+VLAN\s+AGE\nblue\s+101\s+\d+s\n$/);
    expect(JSON.parse(await ok(['get', 'networkattachment', 'blue', '-o', 'json'])).spec).toEqual({ vlan: 101, mtu: 1500 });
    const bad = await kubectl(srv, ['apply', '-f', '-'], 'apiVersion: seine.example/v1\nkind: NetworkAttachment\nmetadata: {name: red}\nspec: {vlan: 5000}\n');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/The NetworkAttachment "red" is invalid/);
    expect(bad.stderr).toMatch(/spec\.vlan: Invalid value: 5000: spec\.vlan in body should be less than or equal to 4094/);
    const unknown = await kubectl(srv, ['apply', '-f', '-'], 'apiVersion: seine.example/v1\nkind: NetworkAttachment\nmetadata: {name: odd}\nspec: {vlan: 7, colour: red}\n');
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/unknown field "spec.colour"/);
    expect(await ok(['delete', 'crd', 'networkattachments.seine.example'])).toMatch(/deleted/);
    const after = await call(srv.api, 'GET', '/apis/seine.example/v1/namespaces/default/networkattachments');
    expect(after.status).toBe(404);
  });
});
