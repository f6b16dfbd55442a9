import { AppsV1Api, type V1Pod } from '@kubernetes/client-node';
import type { NodeContext } from '../../agent/context.js';
import type { AgentFeature, FeatureInspection } from '../../agent/feature.js';
import { EventRecorder } from '../../k8s/events.js';
import { addFlow } from '../../ovs/openflow/index.js';
import { GATEWAY_PORT, gatewayMacFor } from '../../primary/bridge/bridge.js';
import { CHAINED_OWNER, InterfaceStore, inspectedInterface, type PodInterface } from '../../primary/interfacestore/store.js';
import { pipelineFlows, pipelineSync, type NodeConfig, type PipelineState } from '../../primary/pipeline/index.js';
import { logger } from '../../util/log.js';
import { adoptRunningPods } from './adopt.js';
import { awsPolicyAgentEnabled, ensureAwsRules, readAwsNode, readChainedConf, type ChainedConf } from './cloud.js';
import { ChainedPodNetwork, EXT_MOVED_ROUTES, localPod, parseMovedRoutes } from './driver.js';
import { ChainedHost } from './host.js';
import type { MovedRoute } from './pod-link.js';

/** The network name of attachments recorded without one, when no derived conflist says the primary's. */
const FALLBACK_NETWORK = 'seine';
/** Pods listed in one Event at most (an Event's message is bounded). */
const EVENT_PODS = 20;
/**
 * Running pods not taken over are looked for again this often: ones the primary CNI made while Seine's conflist
 * was not written yet (install-cni waits for the primary's), or whose take-over failed.
 */
const ADOPT_SWEEP_MS = 30_000;

/**
 * Seine's pod network in chained mode: the primary CNI (AWS VPC CNI, Azure CNI, ...) owns addresses and routing;
 * this feature takes its pods' links over (OVS port, routes through Seine's gateway), so policy, Services,
 * secondary networks and service chains apply to them, and takes over the pods that ran before it came.
 * Start order: gateway -> records from OVSDB, stray routes and isolations removed -> one atomic flow sync ->
 * cloud rules -> (once pods are known) adoption.
 */
export class ChainedNetworkFeature implements AgentFeature {
  readonly name = 'chained';
  private readonly log = logger('chained');
  private ctx?: NodeContext;
  private host?: ChainedHost;
  private nodeConfig?: NodeConfig;
  private store = new InterfaceStore();
  private readonly moved = new Map<string, MovedRoute[]>();
  private driver?: ChainedPodNetwork;
  private conf?: ChainedConf;
  private events?: EventRecorder;
  /** What the last Event said could not be taken over: the same list is not reported again. */
  private reportedUnadopted = '';
  private sweepTimer?: NodeJS.Timeout;
  private stopped = false;

  get podNetwork(): ChainedPodNetwork | undefined {
    return this.driver;
  }

  /** The taken-over pods' interfaces on the integration bridge. */
  podInterfaces(): readonly PodInterface[] {
    return this.store.list();
  }

  readonly inspection: FeatureInspection = {
    podInterfaces: () => this.store.list().map((i) => inspectedInterface(i, this.ctx?.config.ovs.bridge ?? '', this.conf?.network ?? FALLBACK_NETWORK)),
  };

  async start(ctx: NodeContext): Promise<void> {
    this.ctx = ctx;
    const cfg = ctx.config;
    if (cfg.mode !== 'chained') throw new Error('the chained pod network needs mode: chained');
    this.host = new ChainedHost(ctx.host, GATEWAY_PORT, cfg.ovs.datapathType === 'netdev');
    this.events = new EventRecorder(ctx.core, { component: 'seine-agent', host: ctx.node.name });
    this.nodeConfig = {
      mode: 'chained',
      round: ctx.bridge.round,
      gatewayOfport: ctx.bridge.gatewayOfport,
      tunnelOfport: 0,
      gatewayIp: ctx.node.gatewayIp,
      gatewayMac: gatewayMacFor(ctx.node.ip),
    };
    await this.host.ensureGateway(ctx.node.ip, ctx.mtu.pod);
    this.conf = await readChainedConf(cfg.cniConfDir);
    if (!this.conf) this.log.warn({ confDir: cfg.cniConfDir }, 'no conflist runs seine after a primary CNI yet (install-cni derives it); pods get no policy until it does');

    const loaded = InterfaceStore.fromOvsdb(ctx.vswitch, cfg.ovs.bridge, CHAINED_OWNER);
    this.store = loaded.store;
    for (const [port, ids] of loaded.externalIds) this.moved.set(port, parseMovedRoutes(ids[EXT_MOVED_ROUTES]));
    for (const p of loaded.broken) {
      this.log.warn({ port: p.name }, 'removing a taken-over port that cannot be used');
      await ctx.vswitch.removePort(p.name);
    }
    // What an ADD or a take-over left half done when the agent died: routes and isolations nobody records.
    const ports = new Set(this.store.list().map((i) => i.portName));
    const routed = new Set(this.store.list().flatMap((i) => (this.moved.get(i.portName) ?? []).map((r) => r.dst)));
    const strays = await this.host.removeStrays({ route: (dst) => routed.has(dst), dev: (dev) => ports.has(dev) });
    if (strays.routes.length || strays.isolations.length) this.log.warn(strays, 'removed what a half-done take-over left');

    this.driver = new ChainedPodNetwork({
      bridge: cfg.ovs.bridge,
      vswitch: ctx.vswitch,
      flows: ctx.flows,
      store: this.store,
      moved: this.moved,
      host: ctx.host,
      chainedHost: this.host,
      node: () => this.nodeConfig!,
      userspaceDatapath: cfg.ovs.datapathType === 'netdev',
      ready: () => ctx.ready(),
      defaultNetwork: () => this.conf?.network ?? FALLBACK_NETWORK,
      adopt: (pods, serialize) => this.adopt(pods, serialize),
    });
    const result = await ctx.flows.sync(pipelineSync(this.state()));
    this.log.info({ round: ctx.bridge.round, pods: this.store.size, primary: this.conf?.primaryTypes, cloud: this.conf?.cloud, ...result, changes: undefined }, 'flows synced');
    await this.realizeCloud();
    void ctx.podsSynced.then(() => this.scheduleSweep());
    ctx.metrics.gauge('seine_agent_pod_interfaces', 'Pod interfaces on the pod network attached to the integration bridge', () => this.store.size);
  }

  private state(): PipelineState {
    return { node: this.nodeConfig!, pods: this.store.list().map(localPod), peers: [] };
  }

  /** The cloud's quirks: on EKS, Seine's copies of the AWS connmark rules, and a warning about its policy agent. */
  private async realizeCloud(): Promise<void> {
    const ctx = this.ctx!;
    if (this.conf?.cloud !== 'eks') return;
    await ensureAwsRules(ctx.config.hostNetns, GATEWAY_PORT);
    const ds = await readAwsNode(ctx.kubeConfig.makeApiClient(AppsV1Api)).catch((e: unknown) => {
      this.log.warn({ err: String(e) }, 'cannot read DaemonSet kube-system/aws-node');
      return undefined;
    });
    const why = awsPolicyAgentEnabled(ds);
    if (!why) return;
    const message = `The AWS VPC CNI's network policy agent is enabled (${why}): its eBPF programs filter the same pod traffic as Seine's NetworkPolicies, and neither sees the other's verdicts. Turn it off (aws-node: --enable-network-policy=false) so that Seine alone enforces policy.`;
    this.log.error({ why }, 'AWS network policy agent enabled alongside Seine');
    await this.nodeEvent('Warning', 'AwsNetworkPolicyAgentEnabled', message);
  }

  private async nodeEvent(type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const ctx = this.ctx!;
    const node = ctx.nodes.get(ctx.node.name);
    await this.events!.record({ kind: 'Node', apiVersion: 'v1', name: ctx.node.name, ...(node?.metadata?.uid ? { uid: node.metadata.uid } : {}) }, type, reason, message).catch((e: unknown) =>
      this.log.warn({ err: String(e), reason }, 'cannot record an Event'),
    );
  }

  /** Takes over the pods that ran before Seine came, and says which it could not. */
  private async adopt(pods: readonly V1Pod[], serialize: <T>(containerId: string, fn: () => Promise<T>) => Promise<T>): Promise<void> {
    this.conf = (await readChainedConf(this.ctx!.config.cniConfDir)) ?? this.conf;
    const report = await adoptRunningPods(pods, serialize, {
      cacheDir: this.ctx!.config.cniCacheDir,
      network: this.conf?.network ?? FALLBACK_NETWORK,
      adoptOne: (req) => this.driver!.adoptOne(req),
      attached: (ns, name) => this.store.byPod(ns, name).length > 0,
    });
    if (report.adopted.length) await this.nodeEvent('Normal', 'PodsTakenOver', `Seine took over ${report.adopted.length} running pod(s) of the primary CNI without restarting them: ${report.adopted.slice(0, EVENT_PODS).join(', ')}${report.adopted.length > EVENT_PODS ? ', ...' : ''}`);
    const unadopted = report.unadopted.map((u) => `${u.pod} (${u.reason})`).join('; ');
    if (unadopted === this.reportedUnadopted) return;
    this.reportedUnadopted = unadopted;
    if (report.unadopted.length) {
      const list = report.unadopted.slice(0, EVENT_PODS).map((u) => `${u.pod} (${u.reason})`).join('; ');
      await this.nodeEvent('Warning', 'PodsNotTakenOver', `Seine could not take over ${report.unadopted.length} running pod(s); they have no policy, Services through OVS or secondary networks until restarted: ${list}${report.unadopted.length > EVENT_PODS ? '; ...' : ''}`);
    }
  }

  /** After ovs-vswitchd lost its flows (and the gateway's tap device, with its address and the moved routes). */
  async restore(): Promise<void> {
    const ctx = this.ctx!;
    await ctx.vswitch.waitForOfport(GATEWAY_PORT);
    await this.host!.ensureGateway(ctx.node.ip, ctx.mtu.pod);
    for (const itf of this.store.list()) await this.host!.takeOver(itf.portName, this.moved.get(itf.portName) ?? []);
    await ctx.flows.submit(pipelineFlows(this.state()).map(addFlow));
    await this.realizeCloud();
  }

  private scheduleSweep(): void {
    if (this.stopped) return;
    this.sweepTimer = setTimeout(() => {
      const ctx = this.ctx!;
      void this.adopt(ctx.pods.list(), (id, fn) => ctx.serialize(id, fn))
        .catch((e: unknown) => this.log.warn({ err: String(e) }, 'looking for pods to take over failed'))
        .finally(() => this.scheduleSweep());
    }, ADOPT_SWEEP_MS);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
  }
}
