import { PortAdmission } from './port-admission.js';
import { CoreV1Api, type V1Node, type V1Pod } from '@kubernetes/client-node';
import { Semaphore } from 'async-mutex';
import { IpRoute } from '../host/ip.js';
import { ResilientInformer } from '../k8s/informer.js';
import { loadKubeConfig } from '../k8s/kubeconfig.js';
import { FlowWriter, forgetInstalledFlows } from '../ovs/openflow/index.js';
import { Vswitch } from '../ovs/ovsdb/index.js';
import type { AgentConfig } from '../primary/agent/config.js';
import { discoverUplink, ensureIntegrationBridge, gatewayMacFor } from '../primary/bridge/bridge.js';
import { CniServer } from '../primary/cniserver/index.js';
import { gatewayIpOf, nodeInternalIp } from '../primary/nodes/peers.js';
import { baseScope } from '../primary/pipeline/index.js';
import { logger } from '../util/log.js';
import { AGENT_API_PREFIX, agentApi } from './api.js';
import type { NodeContext } from './context.js';
import { DatapathWatchdog } from './datapath-watchdog.js';
import type { AgentFeature, PodAttachmentHook, PodSandbox } from './feature.js';
import { HealthServer } from '../util/health-server.js';
import { AgentMetrics } from './metrics.js';
import { PodDriver } from './pod-driver.js';
import { SandboxReconciler } from './reconciler.js';

/** VXLAN and Geneve (no options) both add 50 bytes over IPv4. */
const ENCAP_OVERHEAD = 50;
/** ADD/DEL/GC take one unit; re-realizing the whole node takes all of them. */
const LOCK_UNITS = 1024;

/**
 * The node agent: a composition of features. Startup order: health server -> Node object -> OVS connection and
 * integration bridge (a new flow round) -> each feature in order -> flow-restore-wait cleared -> CNI server ->
 * reconciler, pods informer and datapath watchdog. stop() goes the other way; pods keep their network.
 */
export class Agent {
  private readonly log = logger('agent');
  private readonly lock = new Semaphore(LOCK_UNITS);
  private readonly host: IpRoute;
  readonly metrics = new AgentMetrics();
  private readonly health = new HealthServer({ live: () => true, ready: () => this.ready, registry: this.metrics.registry });
  private nodesInformer?: ResilientInformer<V1Node>;
  private podsInformer?: ResilientInformer<V1Pod>;
  /** Set once the pods informer has delivered its first list. */
  private podsKnown = false;
  private podsSynced?: () => void;
  private vswitch?: Vswitch;
  private server?: CniServer;
  private pods?: PodDriver;
  private hooks: PodAttachmentHook[] = [];
  private reconciler?: SandboxReconciler;
  private watchdog?: DatapathWatchdog;
  /** Features started so far, in start order. */
  private started: AgentFeature[] = [];
  private ready = false;
  private stopped = false;
  /** What the features show on the read-only API, once every one has started. */
  private inspections?: NonNullable<AgentFeature['inspection']>[];

  constructor(
    readonly cfg: AgentConfig,
    private readonly features: readonly AgentFeature[],
  ) {
    this.host = new IpRoute(cfg.hostNetns);
    this.health.mount(AGENT_API_PREFIX, agentApi(cfg.nodeName, () => this.inspections));
  }

  /** Runs `fn` as one pod operation: many at once, but never during a whole-node re-realization. */
  private shared<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.runExclusive(fn, 1);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.runExclusive(fn, LOCK_UNITS);
  }

  /** Runs `fn` as a pod operation in turn with the CNI calls of `containerId` (the same order of locks as they take). */
  private serialize<T>(containerId: string, fn: () => Promise<T>): Promise<T> {
    return this.server!.handler.scheduler.attachment(containerId, () => this.shared(fn));
  }

  /** UIDs of this node's pods that exist and are not being deleted; undefined until the pods are known. */
  private livePodUids(): ReadonlySet<string> | undefined {
    if (!this.podsKnown) return undefined;
    return new Set(this.podsInformer!.list().flatMap((p) => (p.metadata?.uid && !p.metadata.deletionTimestamp ? [p.metadata.uid] : [])));
  }

  async start(): Promise<void> {
    const cfg = this.cfg;
    // Served from the start: liveness while the node is set up, readiness once pods can be attached, the read-only
    // API (src/agent/api.ts) once every feature has started.
    if (cfg.metricsPort) await this.health.listen({ port: cfg.metricsPort, host: cfg.metricsAddress });
    if (cfg.metricsSocket) await this.health.listen({ path: cfg.metricsSocket });
    const ctx = await this.startBase();
    // Made before the features start (they may serialize with its calls); it listens only once they have.
    this.server = new CniServer({
      socketPath: cfg.cniSocket,
      chained: cfg.mode === 'chained',
      driver: this.metrics.instrument({
        add: (r) => this.shared(() => this.pods!.add(r)),
        del: (r) => this.shared(() => this.pods!.del(r)),
        check: (r) => this.shared(() => this.pods!.check(r)),
        gc: (r) => this.shared(() => this.pods!.gc(r)),
        status: (r) => this.pods!.status(r),
      }),
    });
    for (const feature of this.features) {
      await feature.start(ctx);
      this.started.push(feature);
    }
    const networks = this.features.flatMap((f) => (f.podNetwork ? [f.podNetwork] : []));
    if (networks.length !== 1) throw new Error(`exactly one feature must answer the CNI calls (${networks.length} do)`);
    this.hooks = this.features.flatMap((f) => (f.podAttachments ? [f.podAttachments] : []));
    this.inspections = this.features.flatMap((f) => (f.inspection ? [f.inspection] : []));
    this.pods = new PodDriver({
      network: networks[0]!,
      hooks: this.hooks,
      core: ctx.core,
      cachedPod: (ns, name) => this.podsInformer?.get(name, ns),
      cniPath: [cfg.cniBinDir],
    });
    await this.endFlowRestoreWait();
    this.ready = true;

    await this.server.start();
    this.watchdog = new DatapathWatchdog({
      ovsRundir: cfg.ovs.rundir,
      flowsPresent: async () => (await ctx.flows.countFlows({ table: 0, cookie: baseScope() })).flows > 0,
      restore: () => this.exclusive(() => this.restoreDatapath()),
    });
    this.watchdog.start();
    this.reconciler = new SandboxReconciler({
      sandboxes: () => this.pods!.sandboxes(),
      release: (containerId) => this.pods!.releaseSandbox(containerId),
      livePods: () => this.livePodUids(),
      serialize: (containerId, fn) => this.serialize(containerId, fn),
    });
    this.reconciler.start();
    this.watchPods();
    this.log.info(
      { socket: cfg.cniSocket, mtu: ctx.mtu.pod, mode: cfg.mode === 'chained' ? 'chained' : cfg.trafficEncapMode, tunnel: ctx.mtu.underlay > ctx.mtu.pod ? cfg.tunnelType : 'none', features: this.features.map((f) => f.name) },
      'agent ready',
    );
  }

  /** Node object, OVS connection, integration bridge: what every feature builds on. */
  private async startBase(): Promise<NodeContext> {
    const cfg = this.cfg;
    const kubeConfig = loadKubeConfig(cfg.kubeconfig);
    const core = kubeConfig.makeApiClient(CoreV1Api);
    const nodes = new ResilientInformer<V1Node>({ kubeConfig, name: 'agent-nodes', path: '/api/v1/nodes', list: () => core.listNode() });
    this.nodesInformer = nodes;
    await nodes.start();
    const self = await this.waitForOwnNode(nodes);
    const ip = nodeInternalIp(self)!;
    const node = cfg.mode === 'chained' ? { name: cfg.nodeName, ip, gatewayIp: ip } : { name: cfg.nodeName, ip, podCidr: self.spec!.podCIDR!, gatewayIp: gatewayIpOf(self.spec!.podCIDR!) };
    this.log.info({ node: node.name, mode: cfg.mode, podCidr: node.podCidr, nodeIp: node.ip }, 'node found');

    const fieldSelector = `spec.nodeName=${cfg.nodeName}`;
    this.podsInformer = new ResilientInformer<V1Pod>({ kubeConfig, name: 'agent-pods', path: '/api/v1/pods', fieldSelector, list: () => core.listPodForAllNamespaces({ fieldSelector }) });
    const podsSynced = new Promise<void>((resolve) => (this.podsSynced = resolve));

    const vswitch = await Vswitch.connect({ remote: `unix:${cfg.ovs.dbSocket}` });
    this.vswitch = vswitch;
    const encap = cfg.mode === 'primary' && cfg.trafficEncapMode === 'encap';
    const uplink = await discoverUplink(vswitch, this.host, node.ip);
    const mtu = cfg.mtu ?? (encap ? uplink.mtu - ENCAP_OVERHEAD : uplink.mtu);
    const bridge = await ensureIntegrationBridge(vswitch, {
      bridge: cfg.ovs.bridge,
      datapathType: cfg.ovs.datapathType,
      gatewayMac: gatewayMacFor(node.ip),
      mtu,
      tunnel: encap ? cfg.tunnelType : undefined,
    });
    this.metrics.round.set(bridge.round);
    this.registerOvsMetrics(vswitch);
    return {
      config: cfg,
      node,
      kubeConfig,
      core,
      vswitch,
      bridge,
      flows: new FlowWriter({ target: `unix:${cfg.ovs.rundir}/${cfg.ovs.bridge}.mgmt`, bridge: cfg.ovs.bridge }),
      uplink,
      mtu: { pod: mtu, underlay: mtu + (encap ? ENCAP_OVERHEAD : 0) },
      host: this.host,
      nodes,
      pods: this.podsInformer,
      podsSynced,
      metrics: this.metrics,
      portAdmission: new PortAdmission(),
      ready: () => this.ready,
      serialize: (containerId, fn) => this.serialize(containerId, fn),
      shared: (fn) => this.shared(fn),
      exclusive: (fn) => this.exclusive(fn),
    };
  }

  /** The node's OVS as the metrics show it: flows and ports per bridge (read from the switch at scrape time), reconnects. */
  private registerOvsMetrics(vswitch: Vswitch): void {
    const writers = new Map<string, FlowWriter>();
    const writer = (bridge: string): FlowWriter => {
      let w = writers.get(bridge);
      if (!w) writers.set(bridge, (w = new FlowWriter({ target: `unix:${this.cfg.ovs.rundir}/${bridge}.mgmt`, bridge })));
      return w;
    };
    this.metrics.gauges('seine_agent_ovs_flows', 'OpenFlow flows installed on each OVS bridge of the node', ['bridge'], async () => {
      const samples = await Promise.all(
        vswitch.cache.bridges().map(async (b) => {
          // A bridge just made or being removed has no management socket: no sample this time.
          const stats = await writer(b.name).countFlows().catch(() => undefined);
          return stats ? [{ labels: { bridge: b.name }, value: stats.flows }] : [];
        }),
      );
      return samples.flat();
    });
    this.metrics.gauges('seine_agent_ovs_ports', 'Ports on each OVS bridge of the node (pod ports, uplinks, tunnels, patches)', ['bridge'], () =>
      vswitch.cache.bridges().map((b) => ({ labels: { bridge: b.name }, value: b.ports.length })),
    );
    this.metrics.counters('seine_agent_ovsdb_reconnects_total', 'Times the connection to ovsdb-server was made again after it dropped', [], () => [
      { labels: {}, value: Math.max(0, vswitch.client.stats.connects - 1) },
    ]);
  }

  private async waitForOwnNode(nodes: ResilientInformer<V1Node>): Promise<V1Node> {
    for (let i = 0; ; i++) {
      const node = nodes.get(this.cfg.nodeName);
      const chained = this.cfg.mode === 'chained';
      if ((chained || node?.spec?.podCIDR) && node && nodeInternalIp(node)) return node;
      if (this.stopped) throw new Error('agent stopped');
      if (i % 20 === 0) this.log.info({ node: this.cfg.nodeName }, chained ? 'waiting for the Node object to have an InternalIP' : 'waiting for the Node object to have a podCIDR and an InternalIP');
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /**
   * The OVS start script sets flow-restore-wait so that a restarted ovs-vswitchd keeps the kernel datapath's
   * flows and holds off until the agent has put the OpenFlow flows back; this is that signal.
   */
  private async endFlowRestoreWait(): Promise<void> {
    if (this.vswitch!.cache.openVSwitch()?.otherConfig['flow-restore-wait'] !== undefined) {
      await this.vswitch!.setOpenVSwitchOtherConfig({}, ['flow-restore-wait']);
      this.log.info('flow-restore-wait cleared');
    }
  }

  /** After ovs-vswitchd lost the flows: every feature restores in order, while no pod operation runs. */
  private async restoreDatapath(): Promise<void> {
    this.log.warn('base flows missing (ovs-vswitchd restarted?); restoring host config and flows');
    forgetInstalledFlows();
    for (const feature of this.started) await feature.restore?.();
    await this.endFlowRestoreWait();
    this.metrics.restores.inc();
    this.log.info({ features: this.started.map((f) => f.name) }, 'datapath restored');
  }

  /**
   * This node's pods: a running pod's change goes to the hooks (hot-plug); a deleted pod's sandbox may have
   * lost its DEL, so the reconciler looks at once rather than at its next tick.
   */
  private watchPods(): void {
    const informer = this.podsInformer!;
    informer.on('update', (pod) => {
      if (this.stopped || pod.metadata?.deletionTimestamp) return;
      const sandbox = this.pods!.runningSandboxes(pod)[0];
      if (sandbox) this.notifyPodUpdated(sandbox, 'hot-plug failed');
    });
    informer.on('delete', () => this.reconciler?.trigger());
    void informer
      .start()
      .then(async () => {
        this.podsKnown = true;
        this.podsSynced?.();
        // Chained: pods the primary CNI made before Seine came join first, so the hooks see them too.
        await this.pods!.adoptRunning(informer.list(), (id, fn) => this.serialize(id, fn));
        this.reconciler?.trigger(0);
        this.adoptSandboxes();
      })
      .catch((e: unknown) => this.log.warn({ err: String(e) }, 'pods informer failed to start'));
  }

  /** After a restart: the running pods' sandboxes go to the hooks, which then catch up with changes made meanwhile. */
  private adoptSandboxes(): void {
    const adopting = this.hooks.filter((h) => h.adopt);
    if (!adopting.length) return;
    for (const pod of this.podsInformer!.list()) {
      for (const sandbox of this.pods!.runningSandboxes(pod)) {
        for (const hook of adopting) hook.adopt!(sandbox);
        // The pod may have changed while the agent was away.
        this.notifyPodUpdated(sandbox, 'hot-plug after restart failed');
      }
    }
  }

  /** Hands a running pod's change to the hooks, in turn with its sandbox's CNI calls. */
  private notifyPodUpdated(sandbox: PodSandbox, failure: string): void {
    const updating = this.hooks.filter((h) => h.podUpdated);
    if (!updating.length) return;
    void this.serialize(sandbox.containerId, async () => {
      for (const hook of updating) await hook.podUpdated!(sandbox);
    }).catch((e: unknown) => this.log.error({ err: String(e) }, failure));
  }

  /** Stops serving and watching, features in reverse order. Pods, ports and flows stay: forwarding continues without the agent. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.ready = false;
    await this.watchdog?.stop();
    await this.reconciler?.stop();
    await this.server?.close();
    for (const feature of [...this.started].reverse()) await feature.stop();
    await this.nodesInformer?.stop();
    await this.podsInformer?.stop();
    await this.vswitch?.close();
    await this.health.close();
  }
}
