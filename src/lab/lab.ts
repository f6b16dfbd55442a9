import { CoreV1Api, type KubeConfig, type V1Node } from '@kubernetes/client-node';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { release as kernelRelease } from 'node:os';
import { dirname, join } from 'node:path';
import { parseAllDocuments, stringify as stringifyYaml } from 'yaml';
import { AGENT_API_PORT } from '../agent/api-types.js';
import { run } from '../host/exec.js';
import { IpBatch } from '../host/ip.js';
import { ResourceLedger, reapStaleLedgers } from '../host/ledger.js';
import { netnsPath } from '../host/netns.js';
import { SubnetAllocator } from '../ipam/subnets.js';
import { MERGE_PATCH } from '../k8s/api.js';
import { loadKubeConfig } from '../k8s/kubeconfig.js';
import { logger } from '../util/log.js';
import { repoRoot } from '../util/paths.js';
import { ApiServer } from './apiserver/index.js';
import { LAB_ADMIN_USER } from './apiserver/tokenreview.js';
import { buildFabric } from './fabric.js';
import { EndpointSliceController } from './endpointslices.js';
import { Kubelet } from './kubelet.js';
import { LabNode } from './node.js';
import { ConflistNetwork, writeBridgeConflist } from './pod-network.js';
import { Scheduler } from './scheduler.js';
import { LoopbackRelay } from './metrics-endpoints.js';
import { SupervisedProcess } from './supervisor.js';
import { installCni } from '../primary/installcni/index.js';
import type { AgentConfig } from '../primary/agent/config.js';
import { planLab, type LabPlan, type PlanOptions } from './topology.js';
import { CHAINED_CONFLIST_NAME } from '../chaining/cnimode/conflist.js';
import { SEINE_CNI_BINARY } from '../cni/plugin-binary.js';
import { eventually } from '../util/wait.js';
import { buildCloudNetwork, provisionCloudNode } from './cloud/profile.js';
import type { AzureMode, CloudProfile } from './cloud/plan.js';

export const DEFAULT_STATE_ROOT = '/run/seine/labs';
/** `SEINE_CPU_PROF=DIR`: the lab's agents and controller write V8 CPU profiles into DIR when they exit. */
function profilingArgs(): string[] {
  const dir = process.env.SEINE_CPU_PROF;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

/** An agent starts (and install-cni derives its conflist) in a few seconds; a loaded machine takes far longer. */
const AGENT_START_TIMEOUT_MS = 120_000;

/** The CLI as built in this repository (the lab runs the build, and its CNI plugin, SEINE_CNI_BINARY). */
const SEINE_BIN = join(repoRoot(), 'bin', 'seine');
const API_RELAY_JS = join(repoRoot(), 'dist', 'src', 'lab', 'apiserver-relay.js');
/** Where pods and nodes reach the API server: the external host's address, kube-apiserver's usual port. */
export const API_RELAY_PORT = 6443;

function writeAgentConfig(path: string, cfg: AgentConfig): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, stringifyYaml(cfg));
}

export interface LabOptions extends Partial<Omit<PlanOptions, 'name' | 'cloud'>> {
  name?: string;
  /** Labs record their state (and ledgers) in `${stateRoot}/${name}`. */
  stateRoot?: string;
  /** Pod network: Seine (default), or the reference bridge + host-local plugins (no Seine). */
  network?: 'seine' | 'bridge';
  /** Seine's traffic mode between nodes (default VXLAN). */
  encap?: 'vxlan' | 'geneve' | 'noEncap';
  /** Called with a line for each step of `up`. */
  progress?: (step: string) => void;
  /** Fixed API server port (default: ephemeral). */
  apiPort?: number;
  /**
   * Who gives nodes their podCIDR: the lab, as kube-controller-manager's node IPAM would (default), or Seine's
   * controller (for clusters that do not allocate them).
   */
  podCidrs?: 'lab' | 'seine';
  /** Whether Seine's agents steer service chains (default true); off lets a test write the agents' chain reports itself. */
  serviceChains?: boolean;
  /**
   * Stand in for a cloud: every node gets the cloud's CNI (the lab's stand-in plugins, their conflist, the node
   * agent's host set-up) and pod addresses from the cloud's range routed by the fabric, no overlay; Node objects
   * get no podCIDR; Seine (when installed) runs chained after the cloud's CNI.
   */
  profile?: CloudProfile;
  /** With a profile: install Seine as its manifest would (default true); false brings up the cloud's CNI alone. */
  seine?: boolean;
  /** EKS: a secondary ENI per node carrying the upper half of its pod block (default true). */
  secondaryEnis?: boolean;
  /** AKS: Azure CNI's mode (default transparent). */
  azureMode?: AzureMode;
}

export interface LabStatus {
  name: string;
  stateDir: string;
  kubeconfig: string;
  apiServer: string;
  supervisorPid: number;
  controllerPid?: number;
  /** The controller's Prometheus endpoint, reachable from the machine (http://127.0.0.1:PORT/metrics). */
  controllerMetrics?: string;
  /** The cloud the lab stands in for, and whether Seine is installed (chained after its CNI). */
  profile?: CloudProfile;
  seineInstalled: boolean;
  fabricNetns: string;
  externalNetns: string;
  externalIp: string;
  nodes: Array<{
    name: string;
    netns: string;
    ip: string;
    podCIDR?: string;
    /** With a profile: the node's pod addresses and its cloud interfaces (ENIs). */
    cloud?: { podBlock: string; enis: Array<{ name: string; ip: string; podCidr: string }> };
    installCni?: number;
    ovs: { ovsdbServer?: number; ovsVswitchd?: number };
    agent?: number;
    /** The node's agent's Prometheus endpoint, reachable from the machine; /healthz and /readyz beside it. */
    agentMetrics?: string;
    pods: Array<{ namespace: string; name: string; netns: string; state: string; pids: number[] }>;
  }>;
}

/** The relay in the external host's namespace that makes the API server reachable from nodes and pods. */
function startApiRelay(plan: LabPlan, socket: string, stateDir: string, ledger: ResourceLedger): SupervisedProcess {
  const relay = new SupervisedProcess(
    {
      name: 'apiserver-relay',
      command: process.execPath,
      args: [API_RELAY_JS, plan.externalIp, String(API_RELAY_PORT), socket],
      netns: netnsPath(plan.externalNetns),
      logFile: join(stateDir, 'apiserver-relay.log'),
      restart: 'always',
    },
    ledger,
  );
  relay.start();
  return relay;
}

export function labStateDir(name: string, stateRoot = DEFAULT_STATE_ROOT): string {
  return join(stateRoot, name);
}

/**
 * A whole Kubernetes cluster on one machine: an embedded API server, nodes as network namespaces with
 * real Open vSwitch, a scheduler and one kubelet per node. Used by `seine lab` and by end-to-end tests.
 */
export class Lab {
  readonly kubeConfig: KubeConfig;
  readonly core: CoreV1Api;
  private readonly kubelets: Kubelet[] = [];
  /** Seine agents by node name (Seine network only). */
  readonly agents = new Map<string, SupervisedProcess>();
  /** The health and metrics endpoints of the controller ("controller") and each node's agent, on loopback. */
  private readonly endpoints = new Map<string, LoopbackRelay>();
  /** Chained install-cni processes by node name (cloud profiles with Seine). */
  readonly installCni = new Map<string, SupervisedProcess>();
  /** Seine's controller (Seine network only). */
  controller?: SupervisedProcess;
  private scheduler?: Scheduler;
  private endpointSlices?: EndpointSliceController;
  /** Relays TCP on the external host's API_RELAY_PORT to the API server's Unix socket. */
  apiRelay?: SupervisedProcess;
  private readonly log;
  private readyTimer?: NodeJS.Timeout;
  private downing?: Promise<void>;

  private constructor(
    readonly plan: LabPlan,
    readonly stateDir: string,
    readonly ledger: ResourceLedger,
    readonly api: ApiServer,
    readonly kubeconfigPath: string,
    readonly nodes: LabNode[],
    readonly options: { network: 'seine' | 'bridge'; encap: 'vxlan' | 'geneve' | 'noEncap'; podCidrs: 'lab' | 'seine'; serviceChains: boolean; seine: boolean },
  ) {
    this.log = logger('lab', { lab: plan.name });
    this.kubeConfig = loadKubeConfig(kubeconfigPath);
    this.core = this.kubeConfig.makeApiClient(CoreV1Api);
  }

  static async up(opts: LabOptions = {}): Promise<Lab> {
    const name = opts.name ?? 'seine';
    const stateRoot = opts.stateRoot ?? DEFAULT_STATE_ROOT;
    const progress = opts.progress ?? (() => undefined);
    const cloud = opts.profile ? { profile: opts.profile, secondaryEnis: opts.secondaryEnis, azureMode: opts.azureMode } : undefined;
    const plan = planLab({ ...opts, name, nodes: opts.nodes ?? 2, cloud });
    const stateDir = labStateDir(name, stateRoot);
    await reapStaleLedgers(stateRoot);
    if (existsSync(stateDir)) throw new Error(`lab '${name}' is already running (state in ${stateDir}); run 'seine lab down --name ${name}' first`);
    const ledger = ResourceLedger.create(stateDir);
    let api: ApiServer | undefined;
    let relay: SupervisedProcess | undefined;
    let lab: Lab | undefined;
    try {
      progress('fabric: underlay, VLAN fabric and external host');
      await buildFabric(plan, ledger);
      progress('api server');
      const apiSocket = join(stateDir, 'apiserver.sock');
      api = await ApiServer.start({
        port: opts.apiPort ?? 0,
        dataFile: join(stateDir, 'apiserver.json'),
        serviceCIDR: plan.serviceCidr,
        unixSocket: apiSocket,
        // In-cluster clients (the `kubernetes` Service) reach it through the relay on the external host.
        advertise: { address: plan.externalIp, port: API_RELAY_PORT },
        // nodes/proxy (`seine get pods`): a node's agent, as a node's address and the agent's port would reach it.
        nodeProxy: (node, port) => lab?.agentEndpoint(node, port),
      });
      relay = startApiRelay(plan, apiSocket, stateDir, ledger);
      const kubeconfigPath = join(stateDir, 'kubeconfig');
      api.writeKubeconfig(kubeconfigPath);
      const nodes: LabNode[] = [];
      for (const n of plan.nodes) {
        progress(`node ${n.name}: namespace, uplinks, Open vSwitch`);
        nodes.push(await LabNode.create(plan, n, stateDir, ledger));
      }
      lab = new Lab(plan, stateDir, ledger, api, kubeconfigPath, nodes, {
        network: opts.network ?? 'seine',
        encap: opts.encap ?? 'vxlan',
        podCidrs: opts.podCidrs ?? 'lab',
        serviceChains: opts.serviceChains ?? true,
        seine: opts.profile ? (opts.seine ?? true) : (opts.network ?? 'seine') === 'seine',
      });
      lab.apiRelay = relay;
      await lab.start(progress);
      progress('ready');
      return lab;
    } catch (e) {
      await relay?.stop();
      await api?.close().catch(() => undefined);
      await ledger.release();
      throw e;
    }
  }

  private async start(progress: (s: string) => void): Promise<void> {
    progress('registering nodes');
    const cidrs = new SubnetAllocator(this.plan.clusterCidr, this.plan.nodeCidrMaskSize);
    const seineAllocates = this.options.podCidrs === 'seine' && this.options.network === 'seine';
    for (const node of this.nodes) {
      // Cloud nodes (EKS, AKS) have no podCIDR: their CNI takes pod addresses from the cloud network.
      await this.core.createNode({ body: this.nodeObject(node, seineAllocates || this.plan.cloud ? undefined : cidrs.allocate()) });
    }
    if (this.plan.cloud) {
      progress(`${this.plan.cloud.profile}: the cloud's CNI on every node, its network on the fabric`);
      for (const node of this.nodes) await provisionCloudNode(this.plan, node.plan, node.dirs);
      await buildCloudNetwork(this.plan);
      if (this.options.seine) {
        progress('Seine: chained install-cni and an agent on every node');
        await this.installSeine();
      }
    } else if (this.options.network === 'bridge') await this.configureBridgeNetwork();
    else {
      progress('Seine: install-cni and an agent on every node');
      await this.installSeine();
    }
    await this.updateNodeReadiness();
    this.readyTimer = setInterval(() => void this.updateNodeReadiness().catch(() => undefined), 2000);
    progress('scheduler, endpointslice controller and kubelets');
    this.scheduler = new Scheduler(this.kubeConfig);
    await this.scheduler.start();
    this.endpointSlices = new EndpointSliceController(this.kubeConfig);
    await this.endpointSlices.start();
    for (const node of this.nodes) {
      const kubelet = new Kubelet({
        kubeConfig: this.kubeConfig,
        nodeName: node.plan.name,
        nodeIp: node.plan.ip,
        nodeNetns: node.netns,
        netnsPrefix: this.plan.name,
        ledger: this.ledger,
        logDir: join(node.dirs.logDir, 'pods'),
        network: new ConflistNetwork(node),
      });
      await kubelet.start();
      this.kubelets.push(kubelet);
    }
  }

  private nodeObject(node: LabNode, podCIDR: string | undefined): V1Node {
    const now = new Date();
    return {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: node.plan.name,
        labels: { 'kubernetes.io/hostname': node.plan.name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', 'seine.dev/lab': this.plan.name },
        annotations: { 'seine.dev/lab-netns': node.netns },
      },
      spec: podCIDR ? { podCIDR, podCIDRs: [podCIDR] } : {},
      status: {
        addresses: [
          { type: 'InternalIP', address: node.plan.ip },
          { type: 'Hostname', address: node.plan.name },
        ],
        capacity: { cpu: '2', memory: '8Gi', pods: '110' },
        allocatable: { cpu: '2', memory: '8Gi', pods: '110' },
        conditions: [{ type: 'Ready', status: 'False', reason: 'NetworkPluginNotReady', message: 'container runtime network not ready: cni config uninitialized', lastHeartbeatTime: now, lastTransitionTime: now }],
        nodeInfo: {
          architecture: 'amd64',
          bootID: '',
          containerRuntimeVersion: 'seine-lab://1',
          kernelVersion: kernelRelease(),
          kubeProxyVersion: '',
          kubeletVersion: 'v1.32.0-seine-lab',
          machineID: '',
          operatingSystem: 'linux',
          osImage: 'Seine lab node (network namespace)',
          systemUUID: '',
        },
      },
    };
  }

  /** Whether Seine is installed (its controller and agents run). */
  get seineInstalled(): boolean {
    return this.controller !== undefined;
  }

  /** The seine-config agent.yaml of a node. */
  agentConfigPath(node: LabNode): string {
    return join(node.dirs.root, 'etc/seine/agent.yaml');
  }

  /**
   * What `kubectl apply -f manifests/seine.yml` runs: the controller Deployment and, per node, the agent DaemonSet
   * (its install-cni container and the agent). With a cloud profile Seine runs chained after the cloud's CNI, and
   * install-cni keeps `05-seine.conflist` derived from the cloud's conflist while it runs, as its container does.
   */
  async installSeine(): Promise<void> {
    if (this.seineInstalled) throw new Error(`Seine is already installed in lab '${this.plan.name}'`);
    const crds = this.api.resource('apiextensions.k8s.io/v1', 'customresourcedefinitions');
    for (const file of readdirSync(join(repoRoot(), 'crds')).filter((f) => f.endsWith('.yaml')).sort()) {
      for (const doc of parseAllDocuments(readFileSync(join(repoRoot(), 'crds', file), 'utf8'))) {
        const crd = doc.toJS() as { kind?: string; metadata?: { name?: string } } | null;
        // A reinstall finds them: kubectl apply leaves existing CRDs as they are.
        if (crd?.kind === 'CustomResourceDefinition' && !crds.tryGet(crd.metadata?.name ?? '')) crds.create(crd as never);
      }
    }
    const cloud = this.plan.cloud;
    const controllerConfig = join(this.stateDir, 'controller.yaml');
    writeFileSync(
      controllerConfig,
      stringifyYaml({
        kubeconfig: this.kubeconfigPath,
        // Cloud nodes take pod addresses from the cloud network: no node CIDRs to hand out.
        allocateNodeCIDRs: !cloud,
        clusterCIDR: cloud?.podCidr ?? this.plan.clusterCidr,
        nodeCIDRMaskSize: this.plan.nodeCidrMaskSize,
        // Agents run in the machine's own network namespace and authenticate with the lab's (admin) token.
        policy: { bindAddress: '127.0.0.1', port: 0, advertiseAddress: '127.0.0.1', agentUsers: [LAB_ADMIN_USER] },
        healthSocket: join(this.stateDir, 'controller-health.sock'),
      }),
    );
    await this.openEndpoint('controller', join(this.stateDir, 'controller-health.sock'));
    this.controller = new SupervisedProcess(
      {
        name: 'seine-controller',
        command: process.execPath,
        args: [...profilingArgs(), SEINE_BIN, 'controller', '--config', controllerConfig],
        env: { ...process.env, POD_NAMESPACE: 'kube-system', POD_NAME: `seine-controller-${this.plan.name}`, SEINE_LOG_LEVEL: process.env.SEINE_AGENT_LOG_LEVEL ?? 'info' },
        logFile: join(this.stateDir, 'seine-controller.log'),
        restart: 'always',
      },
      this.ledger,
    );
    this.controller.start();

    for (const node of this.nodes) {
      const config = this.agentConfigPath(node);
      const socket = join(node.dirs.agentRunDir, 'cni.sock');
      writeAgentConfig(config, {
        nodeName: node.plan.name,
        kubeconfig: this.kubeconfigPath,
        hostNetns: node.netns,
        ovs: { dbSocket: node.ovs.dbSocket, rundir: node.ovs.rundir, datapathType: 'netdev', bridge: 'br-int' },
        mode: cloud ? 'chained' : 'primary',
        trafficEncapMode: this.options.encap === 'noEncap' ? 'noEncap' : 'encap',
        tunnelType: this.options.encap === 'geneve' ? 'geneve' : 'vxlan',
        cniSocket: socket,
        stateDir: node.dirs.stateDir,
        clusterCIDR: cloud?.podCidr ?? this.plan.clusterCidr,
        serviceCIDR: this.plan.serviceCidr,
        egressSNAT: true,
        cniConfDir: node.dirs.cniConfDir,
        cniBinDir: node.dirs.cniBinDir,
        cniCacheDir: node.dirs.cniCacheDir,
        metricsPort: 0,
        metricsAddress: '127.0.0.1',
        metricsSocket: join(node.dirs.agentRunDir, 'metrics.sock'),
        // eth1 is the node's leg on the VLAN fabric.
        secondaryNetworks: { enabled: true, uplinks: { 'br-vlan': node.plan.vlanUplink } },
        serviceChains: { enabled: this.options.serviceChains },
        networkPolicy: { enabled: true, controllerNamespace: 'kube-system' },
        services: { enabled: true },
      });
      // Chained, install-cni is a long-lived container of the agent pod: it keeps the conflist derived from the cloud's.
      if (cloud) this.installCni.set(node.plan.name, this.startNodeProcess(node, 'install-cni', ['install-cni', '--mode', 'chained', '--watch', '--link', '--config', config]));
      else await installCni({ confDir: node.dirs.cniConfDir, binDir: node.dirs.cniBinDir, socket, pluginSource: SEINE_CNI_BINARY, link: true });
      this.agents.set(node.plan.name, this.startNodeProcess(node, 'agent', ['agent', '--config', config]));
      await this.openEndpoint(node.plan.name, join(node.dirs.agentRunDir, 'metrics.sock'));
    }
    // As `kubectl rollout status` would: pods made from here on go through Seine (earlier ones are taken over),
    // whose agent answers (it listens once its features have started). Otherwise the first pods meet an agent
    // still starting and wait out the kubelet's backoff.
    for (const node of this.nodes) {
      const socket = join(node.dirs.agentRunDir, 'cni.sock');
      const conflist = join(node.dirs.cniConfDir, CHAINED_CONFLIST_NAME);
      const ready = (): boolean => existsSync(socket) && (!cloud || existsSync(conflist));
      await eventually(`${cloud ? '05-seine.conflist and ' : ''}the agent's CNI socket on ${node.plan.name}`, async () => (ready() ? true : undefined), AGENT_START_TIMEOUT_MS);
    }
  }

  /** Makes a process's health endpoint (its unix socket) reachable from the machine; kept across its restarts. */
  private async openEndpoint(key: string, socketPath: string): Promise<void> {
    if (!this.endpoints.has(key)) this.endpoints.set(key, await LoopbackRelay.open(socketPath));
  }

  /**
   * Where the API server's node proxy reaches `port` of `node`: its agent's endpoint for the agent's port (the
   * manifests' metricsPort) or no port; nothing else listens on a lab node for the API server.
   */
  agentEndpoint(node: string, port: number | undefined): string | undefined {
    if ((port !== undefined && port !== AGENT_API_PORT) || !this.nodes.some((n) => n.plan.name === node)) return undefined;
    return this.endpoints.get(node)?.url;
  }

  /** The metrics URL of the controller ("controller") or of a node's agent (the node's name), while Seine is installed. */
  metricsUrl(key: string): string | undefined {
    const e = this.endpoints.get(key);
    return e ? `${e.url}/metrics` : undefined;
  }

  private async closeEndpoints(): Promise<void> {
    await Promise.all([...this.endpoints.values()].map((e) => e.close()));
    this.endpoints.clear();
  }

  /** A container of Seine's agent pod on `node`: `seine ARGS`, restarted when it exits, logged to var/log/seine-WHAT.log. */
  private startNodeProcess(node: LabNode, what: string, args: string[]): SupervisedProcess {
    const proc = new SupervisedProcess(
      {
        name: `${what}/${node.plan.name}`,
        command: process.execPath,
        args: [...profilingArgs(), SEINE_BIN, ...args],
        env: { ...process.env, NODE_NAME: node.plan.name, SEINE_LOG_LEVEL: process.env.SEINE_AGENT_LOG_LEVEL ?? 'info' },
        logFile: join(node.dirs.logDir, `seine-${what}.log`),
        restart: 'always',
      },
      this.ledger,
    );
    proc.start();
    return proc;
  }

  /**
   * Removes Seine from a cloud lab as deleting its manifest and running its clean-up would: agents and
   * install-cni stopped, every node given back to the cloud's CNI (`seine agent --release`: pods keep running)
   * and `05-seine.conflist` removed (`seine install-cni --uninstall`), the controller stopped. The cloud's CNI
   * stays, so pods keep their network and new pods get the cloud's alone.
   */
  async uninstallSeine(): Promise<void> {
    if (!this.plan.cloud) throw new Error(`lab '${this.plan.name}' has no cloud profile: Seine is its only pod network`);
    if (!this.seineInstalled) throw new Error(`Seine is not installed in lab '${this.plan.name}'`);
    await Promise.all([...this.installCni.values(), ...this.agents.values()].map((p) => p.stop()));
    this.installCni.clear();
    this.agents.clear();
    for (const node of this.nodes) {
      const config = this.agentConfigPath(node);
      const env = { ...process.env, NODE_NAME: node.plan.name };
      // New pods go to the cloud's CNI alone first, then the running ones are given back to it.
      await run(process.execPath, [SEINE_BIN, 'install-cni', '--uninstall', '--mode', 'chained', '--config', config], { env, timeoutMs: 60_000 });
      await run(process.execPath, [SEINE_BIN, 'agent', '--release', '--config', config], { env, timeoutMs: 120_000 });
    }
    await this.controller?.stop();
    this.controller = undefined;
    await this.closeEndpoints();
  }

  /** Without Seine: the reference bridge plugin on each node, plus routes between the nodes' pod CIDRs. */
  private async configureBridgeNetwork(): Promise<void> {
    const nodes = (await this.core.listNode()).items.filter((n) => n.metadata?.labels?.['seine.dev/lab'] === this.plan.name);
    for (const node of this.nodes) {
      const me = nodes.find((n) => n.metadata?.name === node.plan.name);
      writeBridgeConflist(node, me!.spec!.podCIDR!);
      const routes = new IpBatch();
      for (const other of nodes) {
        if (other === me) continue;
        const ip = other.status!.addresses!.find((a) => a.type === 'InternalIP')!.address;
        routes.replaceRoute(other.spec!.podCIDR!, { via: ip });
      }
      await node.ip.apply(routes);
      // As kubenet does: pods reach outside the cluster CIDR with the node's address.
      const masquerade = `table ip lab-nat {\n chain postrouting {\n  type nat hook postrouting priority srcnat; policy accept;\n  ip saddr ${this.plan.clusterCidr} ip daddr != ${this.plan.clusterCidr} masquerade\n }\n}\n`;
      await run('nft', ['-f', '-'], { netns: node.netns, input: masquerade });
    }
  }

  /** A node is Ready once its CNI config directory holds a network config, as kubelet reports it. */
  private async updateNodeReadiness(): Promise<void> {
    for (const node of this.nodes) {
      const ready = readdirSync(node.dirs.cniConfDir).some((f) => /\.(conflist|conf|json)$/.test(f));
      const current = await this.core.readNode({ name: node.plan.name });
      const cond = current.status?.conditions?.find((c) => c.type === 'Ready');
      if ((cond?.status === 'True') === ready) continue;
      const now = new Date();
      await this.core.patchNodeStatus(
        {
          name: node.plan.name,
          body: {
            status: {
              conditions: [
                ready
                  ? { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: now, lastTransitionTime: now }
                  : { type: 'Ready', status: 'False', reason: 'NetworkPluginNotReady', message: 'container runtime network not ready: cni config uninitialized', lastHeartbeatTime: now, lastTransitionTime: now },
              ],
            },
          },
        },
        MERGE_PATCH,
      );
    }
  }

  status(supervisorPid = process.pid): LabStatus {
    const sandboxes = this.kubelets.map((k) => k.sandboxes());
    return {
      name: this.plan.name,
      stateDir: this.stateDir,
      kubeconfig: this.kubeconfigPath,
      apiServer: this.api.url,
      supervisorPid,
      controllerPid: this.controller?.pid,
      ...(this.metricsUrl('controller') ? { controllerMetrics: this.metricsUrl('controller') } : {}),
      ...(this.plan.cloud ? { profile: this.plan.cloud.profile } : {}),
      seineInstalled: this.seineInstalled,
      fabricNetns: this.plan.fabricNetns,
      externalNetns: this.plan.externalNetns,
      externalIp: this.plan.externalIp,
      nodes: this.nodes.map((n, i) => ({
        name: n.plan.name,
        netns: n.plan.netns,
        ip: n.plan.ip,
        ...(n.plan.cloud ? { cloud: { podBlock: n.plan.cloud.podBlock, enis: n.plan.cloud.enis.map((e) => ({ name: e.name, ip: e.ip, podCidr: e.podCidr })) } } : {}),
        installCni: this.installCni.get(n.plan.name)?.pid,
        ovs: { ovsdbServer: n.ovs.pid('ovsdb-server'), ovsVswitchd: n.ovs.pid('ovs-vswitchd') },
        agent: this.agents.get(n.plan.name)?.pid,
        ...(this.metricsUrl(n.plan.name) ? { agentMetrics: this.metricsUrl(n.plan.name) } : {}),
        pods: sandboxes[i] ?? [],
      })),
    };
  }

  /** Writes status.json for `seine lab status` (read by other processes). */
  writeStatus(supervisorPid = process.pid): void {
    writeFileSync(join(this.stateDir, 'status.json'), JSON.stringify(this.status(supervisorPid), null, 2));
  }

  nodeNetns(name: string): string {
    const node = this.nodes.find((n) => n.plan.name === name);
    if (!node) throw new Error(`no node '${name}' in lab '${this.plan.name}'`);
    return node.netns;
  }

  get externalNetns(): string {
    return netnsPath(this.plan.externalNetns);
  }

  /** Tears everything down: pods (CNI DEL), kubelets, scheduler, API server, then every recorded resource. */
  down(): Promise<void> {
    this.downing ??= (async () => {
      if (this.readyTimer) clearInterval(this.readyTimer);
      await Promise.all(this.kubelets.map((k) => k.stop(true).catch((e: unknown) => this.log.warn({ err: String(e) }, 'kubelet stop failed'))));
      await this.scheduler?.stop().catch(() => undefined);
      await this.endpointSlices?.stop().catch(() => undefined);
      await Promise.all([...this.installCni.values(), ...this.agents.values(), ...(this.controller ? [this.controller] : [])].map((a) => a.stop()));
      await this.closeEndpoints();
      await this.apiRelay?.stop();
      await this.api.close().catch(() => undefined);
      await this.ledger.release();
    })();
    return this.downing;
  }
}
