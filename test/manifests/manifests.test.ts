import * as k8s from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join, relative, resolve } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { AGENT_API_PORT } from '../../src/agent/api-types.js';
import { ApiServer } from '../../src/lab/apiserver/index.js';
import { parseAgentConfig } from '../../src/primary/agent/config.js';
import { parseControllerConfig } from '../../src/primary/controller/config.js';

// Every manifest the repository ships: each object valid for its kind's schema (kubernetes-models), no field the
// kind does not have (client-node's models), least-privilege RBAC, configs the programs accept, and a server-side
// dry run with the stock kubectl.

// Objects straight from YAML; the checks poke at them freely.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = any;

const ROOT = resolve('.');
const MANIFEST = join(ROOT, 'manifests/seine.yml');
/** The single-file installs chained after a cloud's CNI (mode: chained), by the cloud their agent recognises. */
const CHAINED = { eks: join(ROOT, 'manifests/seine-eks.yml'), aks: join(ROOT, 'manifests/seine-aks.yml') } as const;

function yamlFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return yamlFiles(p);
    return ['.yml', '.yaml'].includes(extname(e.name)) ? [p] : [];
  });
}

interface Doc {
  file: string;
  obj: Obj;
}

function loadDocs(files: string[]): Doc[] {
  return files.flatMap((file) =>
    parseAllDocuments(readFileSync(file, 'utf8')).flatMap((d) => {
      if (d.errors.length) throw new Error(`${relative(ROOT, file)}: ${d.errors.map((e) => e.message).join('; ')}`);
      const obj = d.toJS() as Obj;
      return obj === null || obj === undefined ? [] : [{ file, obj }];
    }),
  );
}

const FILES = [...yamlFiles(join(ROOT, 'manifests')), ...yamlFiles(join(ROOT, 'crds'))];
const DOCS = loadDocs(FILES);
const objectsOf = (file: string): Obj[] => DOCS.filter((d) => d.file === file).map((d) => d.obj);
const SEINE = objectsOf(MANIFEST);
const label = (o: Obj): string => `${o?.kind}/${o?.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o?.metadata?.name}`;
/** The object `kind`/`name` of one manifest. */
const finder =
  (file: string) =>
  (kind: string, name: string): Obj => {
    const o = objectsOf(file).find((x) => x.kind === kind && x.metadata?.name === name);
    if (!o) throw new Error(`${relative(ROOT, file)} has no ${kind} ${name}`);
    return o;
  };
const find = finder(MANIFEST);
/** `group/resource[names]: verbs`, one line per resource. */
const grants = (role: Obj): string[] =>
  role.rules.flatMap((r: Obj) =>
    r.resources.flatMap((res: string) => r.apiGroups.map((g: string) => `${g || 'core'}/${res}${r.resourceNames ? `[${r.resourceNames.join(',')}]` : ''}: ${[...r.verbs].sort().join(',')}`)),
  );
const container = (spec: Obj, name: string): Obj => [...(spec.initContainers ?? []), ...spec.containers].find((c: Obj) => c.name === name);
const hostPathOf = (spec: Obj, volume: string): string | undefined => spec.volumes.find((v: Obj) => v.name === volume)?.hostPath?.path;
const mountOf = (c: Obj, path: string): Obj => c.volumeMounts.find((m: Obj) => m.mountPath === path);

/** Roles bound to service accounts the manifest defines, and its workloads run as those accounts. */
function bindingProblems(objs: readonly Obj[]): string[] {
  const problems: string[] = [];
  const sas = new Set(objs.filter((o) => o.kind === 'ServiceAccount').map((o) => `${o.metadata.namespace}/${o.metadata.name}`));
  for (const b of objs.filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding')) {
    const role = objs.find((o) => o.kind === b.roleRef.kind && o.metadata?.name === b.roleRef.name);
    if (!role) problems.push(`${label(b)}: no ${b.roleRef.kind} ${b.roleRef.name}`);
    else if (b.roleRef.kind === 'Role' && role.metadata.namespace !== b.metadata.namespace) problems.push(`${label(b)}: ${label(role)} is in another namespace`);
    for (const s of b.subjects) if (s.kind !== 'ServiceAccount' || !sas.has(`${s.namespace}/${s.name}`)) problems.push(`${label(b)}: subject ${s.kind} ${s.namespace}/${s.name} is not one of its service accounts`);
  }
  for (const w of objs.filter((o) => ['DaemonSet', 'Deployment'].includes(o.kind))) {
    if (!sas.has(`${w.metadata.namespace}/${w.spec.template.spec.serviceAccountName}`)) problems.push(`${label(w)}: runs as a service account it does not define`);
  }
  return problems;
}

/** Kinds the repository defines itself (apiVersion/kind), from its CustomResourceDefinitions. */
const CUSTOM_KINDS = new Set(
  DOCS.filter((d) => d.obj.kind === 'CustomResourceDefinition').flatMap((d) => (d.obj.spec?.versions ?? []).map((v: Obj) => `${d.obj.spec.group}/${v.name}/${d.obj.spec.names.kind}`)),
);

interface Model {
  validate(): void;
}

async function modelFor(apiVersion: string, kind: string): Promise<(new (data: Obj) => Model) | undefined> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(`kubernetes-models/${apiVersion}`)) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  return mod[kind] as (new (data: Obj) => Model) | undefined;
}

interface Attr {
  baseName: string;
  type: string;
}

/** Paths of fields the kind does not have, walking client-node's generated models (which know every field). */
function unknownFields(value: unknown, type: string, path: string, out: string[]): string[] {
  if (value === null || value === undefined) return out;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (Array.isArray(value)) value.forEach((v, i) => unknownFields(v, array[1]!, `${path}[${i}]`, out));
    return out;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value === 'object') for (const [k, v] of Object.entries(value)) unknownFields(v, map[1]!, `${path}.${k}`, out);
    return out;
  }
  const model = (k8s as unknown as Record<string, { getAttributeTypeMap?: () => Attr[] } | undefined>)[type];
  // Primitives, IntOrString, any: the schema check covers their types.
  if (!model?.getAttributeTypeMap || typeof value !== 'object' || Array.isArray(value)) return out;
  const attrs = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    const t = attrs.get(k);
    if (t === undefined) out.push(`${path}.${k}`);
    else unknownFields(v, t, `${path}.${k}`, out);
  }
  return out;
}

const modelName = (apiVersion: string, kind: string): string => {
  const version = apiVersion.split('/').pop()!;
  return `${version[0]!.toUpperCase()}${version.slice(1)}${kind}`;
};

/** What keeps a seine-config ConfigMap from being a chained install's: mode, service CIDR, primary mode's settings. */
function chainedConfigProblems(cm: Obj, serviceCIDR: string): string[] {
  const problems: string[] = [];
  const raw = parseYaml(cm.data['agent.yaml']) as Record<string, unknown>;
  const agent = parseAgentConfig(raw, { NODE_NAME: 'n' });
  if (agent.mode !== 'chained') problems.push(`agent.yaml: mode is ${agent.mode}, not chained`);
  if (agent.serviceCIDR !== serviceCIDR) problems.push(`agent.yaml: serviceCIDR is ${agent.serviceCIDR}, not ${serviceCIDR}`);
  if (agent.egressSNAT) problems.push('agent.yaml: egressSNAT is on (the cloud CNI SNATs)');
  const unused = ['trafficEncapMode', 'tunnelType', 'mtu', 'clusterCIDR'].filter((k) => k in raw);
  if (unused.length) problems.push(`agent.yaml: sets ${unused.join(', ')}, which chained mode does not use`);
  if (parseControllerConfig(parseYaml(cm.data['controller.yaml']), {}).allocateNodeCIDRs) problems.push('controller.yaml: allocates node pod CIDRs');
  return problems;
}

describe('manifests', () => {
  it('are found and parse', () => {
    expect(FILES).toContain(MANIFEST);
    expect(SEINE.length).toBeGreaterThan(5);
    for (const d of DOCS) expect([relative(ROOT, d.file), typeof d.obj.apiVersion, typeof d.obj.kind, typeof d.obj.metadata?.name]).toEqual([relative(ROOT, d.file), 'string', 'string', 'string']);
  });

  it.each(DOCS.map((d) => [`${relative(ROOT, d.file)}: ${label(d.obj)}`, d.obj] as const))('%s is valid for its kind', async (_name, obj) => {
    const { apiVersion, kind } = obj;
    const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
    if (CUSTOM_KINDS.has(`${group}/${version}/${kind}`)) return;
    const Model = await modelFor(apiVersion, kind);
    if (!Model) throw new Error(`${apiVersion} ${kind} is not a Kubernetes kind, nor defined by a CRD in the repository`);
    new Model(obj).validate();
    expect(unknownFields(obj, modelName(apiVersion, kind), kind, [])).toEqual([]);
  });

  it('the field check finds misspelt fields', () => {
    const ds = structuredClone(find('DaemonSet', 'seine-agent'));
    ds.spec.template.spec.containers[0].volumeMounts[0].mountPropagaton = 'HostToContainer';
    ds.spec.template.spec.hostNetwrok = true;
    expect(unknownFields(ds, 'V1DaemonSet', 'DaemonSet', []).sort()).toEqual(['DaemonSet.spec.template.spec.containers[0].volumeMounts[0].mountPropagaton', 'DaemonSet.spec.template.spec.hostNetwrok']);
  });

  it('seine-config holds an agent.yaml and a controller.yaml the programs accept, with the same cluster CIDR', () => {
    const cm = find('ConfigMap', 'seine-config');
    expect(Object.keys(cm.data).sort()).toEqual(['agent.yaml', 'controller.yaml']);
    const agent = parseAgentConfig(parseYaml(cm.data['agent.yaml']), { NODE_NAME: 'node-1' });
    expect(agent.nodeName).toBe('node-1');
    const controller = parseControllerConfig(parseYaml(cm.data['controller.yaml']), { POD_NAMESPACE: 'kube-system' });
    expect(controller.clusterCIDR).toBe(agent.clusterCIDR);
    expect(controller.leaderElection).toMatchObject({ enabled: true, namespace: 'kube-system', leaseName: 'seine-controller', leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 });
  });

  describe('RBAC', () => {
    // Every install's roles: seine.yml and the chained ones.
    const roles = [MANIFEST, ...Object.values(CHAINED)].flatMap(objectsOf).filter((o) => o.kind === 'Role' || o.kind === 'ClusterRole');

    it('has no wildcards, no secrets and no privilege-granting verbs', () => {
      expect(roles.length).toBeGreaterThan(0);
      for (const role of roles) {
        for (const r of role.rules) {
          for (const field of ['apiGroups', 'resources', 'verbs', 'resourceNames'] as const) expect([label(role), field, (r[field] ?? []).filter((v: string) => v.includes('*'))]).toEqual([label(role), field, []]);
          expect(r.nonResourceURLs).toBeUndefined();
          expect(r.resources.filter((x: string) => x.startsWith('secrets') || x.startsWith('serviceaccounts/token'))).toEqual([]);
          expect(r.verbs.filter((v: string) => ['escalate', 'bind', 'impersonate', 'delete', 'deletecollection'].includes(v))).toEqual([]);
        }
      }
    });

    it('grants the agent and the controller exactly what they use', () => {
      expect(grants(find('ClusterRole', 'seine-agent')).sort()).toEqual(
        [
          'core/nodes: get,list,patch,watch',
          'core/pods: get,list,patch,watch',
          'core/namespaces: get,list,watch',
          'core/events: create,patch',
          'core/services: get,list,watch',
          'discovery.k8s.io/endpointslices: get,list,watch',
          'k8s.cni.cncf.io/network-attachment-definitions: get,list,watch',
          'crd.seine.dev/ippools: get,list,patch,update,watch',
          'crd.seine.dev/ippools/status: get,patch,update',
          'crd.seine.dev/servicechains: get,list,watch',
          'crd.seine.dev/traceflows: get,list,watch',
          'crd.seine.dev/traceflows/status: get,update',
        ].sort(),
      );
      expect(grants(find('ClusterRole', 'seine-controller')).sort()).toEqual(
        [
          'core/events: create,patch',
          'core/nodes: get,list,patch,watch',
          'core/pods: get,list,watch',
          'core/namespaces: get,list,watch',
          'k8s.cni.cncf.io/network-attachment-definitions: get,list,watch',
          'crd.seine.dev/servicechains: get,list,watch',
          'crd.seine.dev/servicechains/status: get,patch,update',
          'crd.seine.dev/traceflows: get,list,watch',
          'crd.seine.dev/traceflows/status: get,update',
          'core/services: get',
          'networking.k8s.io/networkpolicies: list,watch',
          'policy.networking.k8s.io/clusternetworkpolicies: list,watch',
          'policy.networking.k8s.io/clusternetworkpolicies/status: patch,update',
          'k8s.cni.cncf.io/multi-networkpolicies: list,watch',
          'k8s.cni.cncf.io/multi-networkpolicies/status: patch,update',
          'authentication.k8s.io/tokenreviews: create',
          'authorization.k8s.io/subjectaccessreviews: create',
        ].sort(),
      );
      const le = find('Role', 'seine-controller-leader-election');
      expect(le.metadata.namespace).toBe('kube-system');
      expect(grants(le).sort()).toEqual(['coordination.k8s.io/leases: create', 'coordination.k8s.io/leases[seine-controller]: get,update']);
      // The policy channel's endpoint: the controller publishes it, agents only read it.
      const endpoint = find('Role', 'seine-controller-policy-endpoint');
      expect(endpoint.metadata.namespace).toBe('kube-system');
      expect(grants(endpoint).sort()).toEqual(['core/configmaps: create', 'core/configmaps[seine-controller-endpoint]: get,update']);
      const agentEndpoint = find('Role', 'seine-agent-policy-endpoint');
      expect(agentEndpoint.metadata.namespace).toBe('kube-system');
      expect(grants(agentEndpoint)).toEqual(['core/configmaps[seine-controller-endpoint]: get']);
    });

    it('binds roles that exist to service accounts that exist', () => {
      expect(SEINE.filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding')).toHaveLength(5);
      expect(bindingProblems(SEINE)).toEqual([]);
      const workloads = SEINE.filter((o) => ['DaemonSet', 'Deployment'].includes(o.kind));
      expect(workloads.map(label).sort()).toEqual(['DaemonSet/kube-system/seine-agent', 'Deployment/kube-system/seine-controller']);
      // The check finds a binding to a role that is not there, and a stranger as subject.
      const broken = structuredClone(SEINE);
      const binding = broken.find((o: Obj) => o.kind === 'RoleBinding');
      binding.roleRef.name = 'seine-missing';
      binding.subjects[0].name = 'default';
      expect(bindingProblems(broken)).toEqual([`${label(binding)}: no Role seine-missing`, `${label(binding)}: subject ServiceAccount kube-system/default is not one of its service accounts`]);
    });
  });

  describe('workloads', () => {
    const ds = find('DaemonSet', 'seine-agent');
    const deploy = find('Deployment', 'seine-controller');
    const agentConfig = parseAgentConfig(parseYaml(find('ConfigMap', 'seine-config').data['agent.yaml']), { NODE_NAME: 'n' });
    const pod = ds.spec.template.spec;

    it.each([MANIFEST, ...Object.values(CHAINED)].map((f) => [relative(ROOT, f), f]))('%s: mount only volumes the pod defines, and run the image without pulling', (_name, file) => {
      const specs = objectsOf(file).flatMap((o) => (['DaemonSet', 'Deployment'].includes(o.kind) ? [o.spec.template.spec] : []));
      expect(specs).toHaveLength(2);
      for (const spec of specs) {
        const volumes = new Set(spec.volumes.map((v: Obj) => v.name));
        for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
          for (const m of c.volumeMounts ?? []) expect([c.name, m.name, volumes.has(m.name)]).toEqual([c.name, m.name, true]);
          expect([c.name, c.image, c.imagePullPolicy]).toEqual([c.name, 'seine:0.1.0', 'IfNotPresent']);
        }
        for (const v of spec.volumes) if (v.configMap) expect(finder(file)('ConfigMap', v.configMap.name)).toBeDefined();
      }
    });

    it('the agent DaemonSet: host network, critical, everywhere, privileged agent, OVS beside it, install-cni first', () => {
      expect(pod).toMatchObject({ hostNetwork: true, hostPID: false, priorityClassName: 'system-node-critical', tolerations: [{ operator: 'Exists' }] });
      expect(ds.spec.updateStrategy.type).toBe('RollingUpdate');
      expect(pod.initContainers.map((c: Obj) => c.name)).toEqual(['install-cni']);
      expect(pod.containers.map((c: Obj) => c.name)).toEqual(['seine-agent', 'openvswitch']);
      const agent = container(pod, 'seine-agent');
      expect(agent.args).toEqual(['agent', '--config', '/etc/seine/agent.yaml']);
      expect(agent.securityContext.privileged).toBe(true);
      for (const c of [agent, container(pod, 'install-cni')]) expect(c.env).toContainEqual({ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
      expect(mountOf(agent, '/var/run/netns').mountPropagation).toBe('HostToContainer');
      expect(mountOf(agent, '/lib/modules').readOnly).toBe(true);
      for (const path of ['/etc/cni/net.d', '/opt/cni/bin', '/var/run/seine', '/var/lib/seine', '/var/run/openvswitch', '/var/run/netns', '/lib/modules']) {
        expect([path, hostPathOf(pod, mountOf(agent, path).name)]).toEqual([path, path]);
      }
      // Probes use the agent's health endpoint on the port its config serves.
      expect(agent.readinessProbe.httpGet).toEqual({ path: '/readyz', port: agentConfig.metricsPort, host: '127.0.0.1' });
      expect(agent.livenessProbe.httpGet).toEqual({ path: '/healthz', port: agentConfig.metricsPort, host: '127.0.0.1' });
      // `seine get pods|services` reaches the agent there by default, on the node's address (the API server's node proxy).
      expect([agentConfig.metricsPort, agentConfig.metricsAddress]).toEqual([AGENT_API_PORT, '0.0.0.0']);
    });

    it('install-cni and the agent agree on paths, mounted where they are on the host', () => {
      const install = container(pod, 'install-cni');
      expect(install.args).toEqual(['install-cni', '--config', '/etc/seine/agent.yaml']);
      // The agent's config names these directories for the host's runtime: container and host paths must be the same.
      for (const dir of [agentConfig.cniConfDir, agentConfig.cniBinDir]) expect(hostPathOf(pod, mountOf(install, dir).name)).toBe(dir);
      const agent = container(pod, 'seine-agent');
      const ovs = container(pod, 'openvswitch');
      expect(mountOf(agent, resolve(agentConfig.cniSocket, '..'))).toBeDefined();
      for (const c of [agent, ovs]) expect(mountOf(c, resolve(agentConfig.ovs.dbSocket, '..'))).toBeDefined();
      expect(resolve(agentConfig.ovs.dbSocket, '..')).toBe(agentConfig.ovs.rundir);
      expect(ovs.command.join('\n')).toContain(`--remote=punix:$run/db.sock`);
      expect(ovs.command.join('\n')).toContain(`run=${agentConfig.ovs.rundir}`);
    });

    it('the controller Deployment: two replicas on the host network, cluster-critical, linux, probes on its health port', () => {
      const spec = deploy.spec.template.spec;
      expect(deploy.spec.replicas).toBe(2);
      expect(spec).toMatchObject({ hostNetwork: true, priorityClassName: 'system-cluster-critical', nodeSelector: { 'kubernetes.io/os': 'linux' } });
      const c = container(spec, 'seine-controller');
      expect(c.args).toEqual(['controller', '--config', '/etc/seine/controller.yaml']);
      expect(c.env).toContainEqual({ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } });
      const port = parseControllerConfig(parseYaml(find('ConfigMap', 'seine-config').data['controller.yaml']), {}).healthPort;
      expect(port).toBeGreaterThan(0);
      expect([c.livenessProbe.httpGet.port, c.readinessProbe.httpGet.port, c.ports[0].containerPort]).toEqual([port, port, port]);
      // The policy channel: its port exposed, the pod's IP advertised (in its certificate).
      const policy = parseControllerConfig(parseYaml(find('ConfigMap', 'seine-config').data['controller.yaml']), { POD_IP: '192.0.2.1' }).policy;
      expect(policy).toMatchObject({ enabled: true, port: 10349, advertiseAddress: '192.0.2.1', agentUsers: ['system:serviceaccount:kube-system:seine-agent'] });
      expect(c.ports).toContainEqual({ name: 'policy', containerPort: policy.port, protocol: 'TCP' });
      expect(c.env).toContainEqual({ name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } });
    });
  });

  describe.each(Object.entries(CHAINED))('seine-%s.yml: chained after the cloud CNI', (cloud, file) => {
    const objs = objectsOf(file);
    const at = finder(file);
    const cm = at('ConfigMap', 'seine-config');
    const pod = at('DaemonSet', 'seine-agent').spec.template.spec;
    const agentConfig = parseAgentConfig(parseYaml(cm.data['agent.yaml']), { NODE_NAME: 'n' });
    const serviceCIDR = cloud === 'eks' ? '10.100.0.0/16' : '10.0.0.0/16';

    it('has the objects of seine.yml (and, on EKS, the agent\'s read of aws-node)', () => {
      const extra = cloud === 'eks' ? ['Role/kube-system/seine-agent-aws-node', 'RoleBinding/kube-system/seine-agent-aws-node'] : [];
      expect(objs.map(label).sort()).toEqual([...SEINE.map(label), ...extra].sort());
    });

    it('configures the agent chained (no pod CIDR, tunnel or SNAT of its own) and the controller without node IPAM', () => {
      expect(chainedConfigProblems(cm, serviceCIDR)).toEqual([]);
      expect(agentConfig).toMatchObject({ mode: 'chained', cniCacheDir: '/var/lib/cni', egressSNAT: false, serviceCIDR, metricsPort: AGENT_API_PORT, metricsAddress: '0.0.0.0' });
      expect([agentConfig.networkPolicy.enabled, agentConfig.services.enabled, agentConfig.secondaryNetworks.enabled, agentConfig.serviceChains.enabled]).toEqual([true, true, true, true]);
      // The check finds a config that would make Seine the pod network, or keep primary mode's settings.
      const primary = structuredClone(cm);
      primary.data['agent.yaml'] = primary.data['agent.yaml'].replace('mode: chained', 'mode: primary');
      expect(chainedConfigProblems(primary, serviceCIDR)).toEqual(['agent.yaml: mode is primary, not chained']);
      const leftovers = structuredClone(cm);
      leftovers.data['agent.yaml'] += 'trafficEncapMode: encap\nclusterCIDR: 10.244.0.0/16\n';
      leftovers.data['controller.yaml'] = leftovers.data['controller.yaml'].replace('allocateNodeCIDRs: false', 'allocateNodeCIDRs: true');
      expect(chainedConfigProblems(leftovers, '10.96.0.0/12')).toEqual([
        `agent.yaml: serviceCIDR is ${serviceCIDR}, not 10.96.0.0/12`,
        'agent.yaml: sets trafficEncapMode, clusterCIDR, which chained mode does not use',
        'controller.yaml: allocates node pod CIDRs',
      ]);
    });

    it('grants the agent what seine.yml does (plus aws-node on EKS) and the controller no access to Nodes', () => {
      expect(grants(at('ClusterRole', 'seine-agent')).sort()).toEqual(grants(find('ClusterRole', 'seine-agent')).sort());
      expect(grants(at('ClusterRole', 'seine-controller')).sort()).toEqual(grants(find('ClusterRole', 'seine-controller')).filter((g) => !g.startsWith('core/nodes:')).sort());
      for (const name of ['seine-controller-leader-election', 'seine-controller-policy-endpoint', 'seine-agent-policy-endpoint']) expect(at('Role', name)).toEqual(find('Role', name));
      if (cloud === 'eks') {
        const aws = at('Role', 'seine-agent-aws-node');
        expect([aws.metadata.namespace, grants(aws)]).toEqual(['kube-system', ['apps/daemonsets[aws-node]: get']]);
      }
      expect(bindingProblems(objs)).toEqual([]);
    });

    it('runs install-cni chained and long-lived, and gives the agent the runtime\'s CNI cache; the rest as seine.yml', () => {
      expect(pod.initContainers).toBeUndefined();
      expect(pod.containers.map((c: Obj) => c.name)).toEqual(['seine-agent', 'openvswitch', 'install-cni']);
      const install = container(pod, 'install-cni');
      expect(install.args).toEqual(['install-cni', '--config', '/etc/seine/agent.yaml', '--mode', 'chained', '--watch']);
      expect(install.env).toContainEqual({ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
      // It writes both directories, at the host's paths (the agent's config names them for the host's runtime).
      for (const dir of [agentConfig.cniConfDir, agentConfig.cniBinDir]) {
        expect([dir, hostPathOf(pod, mountOf(install, dir).name), mountOf(install, dir).readOnly]).toEqual([dir, dir, undefined]);
      }
      const agent = container(pod, 'seine-agent');
      const cache = mountOf(agent, agentConfig.cniCacheDir);
      expect([hostPathOf(pod, cache.name), cache.readOnly]).toEqual([agentConfig.cniCacheDir, true]);
      // Otherwise the agent, OVS and the controller are seine.yml's, so a fix there is one here too.
      const base = find('DaemonSet', 'seine-agent').spec.template.spec;
      expect({ ...agent, volumeMounts: agent.volumeMounts.filter((m: Obj) => m !== cache) }).toEqual(container(base, 'seine-agent'));
      expect(container(pod, 'openvswitch')).toEqual(container(base, 'openvswitch'));
      expect(pod.volumes.filter((v: Obj) => v.name !== cache.name)).toEqual(base.volumes);
      const { initContainers: _init, containers: _containers, volumes: _volumes, ...rest } = base;
      expect({ ...pod, containers: undefined, volumes: undefined }).toEqual({ ...rest, containers: undefined, volumes: undefined });
      expect(at('Deployment', 'seine-controller')).toEqual(find('Deployment', 'seine-controller'));
    });
  });

  describe('kubectl against the embedded API server', () => {
    let api: ApiServer;
    let dir: string;
    let kubeconfig: string;
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'seine-manifests-'));
      api = await ApiServer.start({});
      kubeconfig = join(dir, 'kubeconfig');
      api.writeKubeconfig(kubeconfig);
    });
    afterAll(async () => {
      await api?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    const kubectl = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
      new Promise((done) => {
        execFile(process.env.KUBECTL ?? 'kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), ...args], { timeout: 60_000 }, (err, stdout, stderr) =>
          done({ code: err ? Number((err as { code?: unknown }).code ?? 1) || 1 : 0, stdout, stderr }),
        );
      });

    it.each([MANIFEST, ...Object.values(CHAINED)].map((f) => [relative(ROOT, f), f]))('%s: apply --dry-run=server accepts every object and creates none', async (_name, file) => {
      const r = await kubectl('apply', '--dry-run=server', '-f', file);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const lines = r.stdout.trim().split('\n');
      expect(lines).toHaveLength(objectsOf(file).length);
      for (const l of lines) expect(l).toMatch(/ created \(server dry run\)$/);
      expect(api.resource('apps/v1', 'daemonsets').tryGet('seine-agent', 'kube-system')).toBeUndefined();
      expect(api.resource('v1', 'configmaps').tryGet('seine-config', 'kube-system')).toBeUndefined();
    });

    it('apply creates everything, and applying again changes nothing', async () => {
      const first = await kubectl('apply', '-f', MANIFEST);
      expect(first.stderr).toBe('');
      expect(first.code).toBe(0);
      const cm = api.resource('v1', 'configmaps').get<Obj>('seine-config', 'kube-system');
      expect(cm.data).toEqual(find('ConfigMap', 'seine-config').data);
      const again = await kubectl('apply', '-f', MANIFEST);
      expect(again.code).toBe(0);
      for (const l of again.stdout.trim().split('\n')) expect(l).toMatch(/ unchanged$/);
    });
  });
});
