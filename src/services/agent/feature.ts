import { DiscoveryV1Api, type V1EndpointSlice, type V1Service } from '@kubernetes/client-node';
import type { NodeContext } from '../../agent/context.js';
import type { ServiceFrontendInfo } from '../../agent/api-types.js';
import type { AgentFeature, FeatureInspection } from '../../agent/feature.js';
import { ResilientInformer } from '../../k8s/informer.js';
import { VswitchdControl } from '../../ovs/vswitchd-control.js';
import { GATEWAY_PORT, gatewayMacFor } from '../../primary/bridge/bridge.js';
import { logger } from '../../util/log.js';
import { SerialPass } from '../../util/serial.js';
import { DatapathMemo, GroupIds, serviceDatapath, serviceSync, type ServiceNode } from '../datapath/flows.js';
import { SERVICE_ROUND } from '../datapath/layout.js';
import { ServiceHostNetwork, type HostServicesState } from '../host/index.js';
import { nodeServices, ServiceStateMemo } from '../model/desired.js';
import type { NodeServices, ServiceEndpoint, ServiceFrontend } from '../model/types.js';
import { InProcessHealthChecks, NetnsHealthChecks, type HealthCheckListeners } from './health-check.js';

/** Service and EndpointSlice events come in bursts (a rollout): one realization after the burst. */
const REALIZE_DELAY_MS = 20;
/** A realization that failed (ovs-vswitchd away) is tried again after this long. */
const RETRY_MS = 2000;
/** Informers that cannot list yet (API server away) are tried again this often; what is installed stays. */
const LIST_RETRY_MS = 2000;

/** What the node's kernel must do for a node's Service state (routes in, masquerade, rejects). */
export function hostState(state: NodeServices, gw: { ip: string; mac: string }, serviceCidr: string, chained = false): HostServicesState {
  const external = state.frontends.filter((f) => f.kind === 'External');
  return {
    gatewayIf: GATEWAY_PORT,
    gatewayIp: gw.ip,
    gatewayMac: gw.mac,
    serviceCidr,
    externalAddresses: [...new Set(external.map((f) => f.ip))].sort(),
    rejects: state.frontends.filter((f) => f.kind !== 'NodePort' && f.reject).map((f) => ({ ip: f.ip, protocol: f.protocol, port: f.port })),
    nodePorts: state.nodePorts,
    masqueradeExternal: external.filter((f) => !f.externalEndpoints).map((f) => ({ ip: f.ip, protocol: f.protocol, port: f.port })),
    ...(chained ? { chained } : {}),
  };
}

const counts = (endpoints: readonly ServiceEndpoint[]): { local: number; remote: number } => {
  const local = endpoints.filter((e) => e.local).length;
  return { local, remote: endpoints.length - local };
};

/** A frontend as the agent's read-only API shows it: a node port on the node's address. */
export function frontendInfo(f: ServiceFrontend, nodeIp: string): Omit<ServiceFrontendInfo, 'node'> {
  // `namespace/name:port-name`: neither a namespace nor a name holds a slash or a colon.
  const slash = f.service.indexOf('/');
  const colon = f.service.indexOf(':', slash);
  return {
    namespace: f.service.slice(0, slash),
    name: f.service.slice(slash + 1, colon),
    portName: f.service.slice(colon + 1),
    kind: f.kind,
    address: f.kind === 'NodePort' ? nodeIp : f.ip,
    port: f.port,
    protocol: f.protocol,
    endpoints: counts(f.endpoints),
    ...(f.externalEndpoints ? { externalEndpoints: counts(f.externalEndpoints) } : {}),
    reject: f.reject,
    ...(f.affinitySeconds !== undefined ? { affinitySeconds: f.affinitySeconds } : {}),
    endpointList: f.endpoints.map((e) => ({ ip: e.ip, port: e.port, local: e.local })),
  };
}

/**
 * The Service proxy of the node (kube-proxy's job, in OVS): watches Services and EndpointSlices, computes the
 * node's frontends and endpoints, installs the Service tables and select groups as one scope in one bundle, and
 * keeps the node's kernel side (routes into OVS, node ports, masquerade, rejects) in step. Until both watches
 * have listed, what is installed stays: a restarted agent never drops a Service for lack of news.
 */
export class ServicesFeature implements AgentFeature {
  readonly name = 'services';
  private readonly log = logger('services');
  private ctx!: NodeContext;
  private services?: ResilientInformer<V1Service>;
  private slices?: ResilientInformer<V1EndpointSlice>;
  private host?: ServiceHostNetwork;
  private health?: HealthCheckListeners;
  /** JSON of the health checks last answered. */
  private healthInstalled?: string;
  private control?: VswitchdControl;
  private readonly groupIds = new GroupIds();
  private readonly memo = new DatapathMemo();
  private readonly pass = new SerialPass(() => this.realize(), () => this.stopped);
  private listed = false;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  /** What is installed is the state last computed (false: realize it, whatever it is). */
  private upToDate = false;
  /** Each Service's share of the state, kept while its objects stay the same. */
  private readonly shares = new ServiceStateMemo();
  /** JSON of the node's kernel side last synced (most endpoint changes leave it as it is). */
  private hostInstalled?: string;
  /** The state last realized whole: what the metrics and the read-only API show. */
  private realized?: NodeServices;

  readonly inspection: FeatureInspection = {
    serviceFrontends: () => (this.realized?.frontends ?? []).map((f) => frontendInfo(f, this.ctx.node.ip)),
  };

  async start(ctx: NodeContext): Promise<void> {
    this.ctx = ctx;
    if (ctx.config.ovs.datapathType === 'netdev') this.control = new VswitchdControl(ctx.config.ovs.rundir);
    this.host = new ServiceHostNetwork(ctx.host);
    // A real node's agent runs in the node's network namespace; the lab's runs beside the namespace it serves.
    this.health = ctx.host.netns ? new NetnsHealthChecks(ctx.host.netns) : new InProcessHealthChecks();
    const kc = ctx.kubeConfig;
    const discovery = kc.makeApiClient(DiscoveryV1Api);
    this.services = new ResilientInformer<V1Service>({ kubeConfig: kc, name: 'services', path: '/api/v1/services', list: () => ctx.core.listServiceForAllNamespaces() });
    this.slices = new ResilientInformer<V1EndpointSlice>({ kubeConfig: kc, name: 'endpointslices', path: '/apis/discovery.k8s.io/v1/endpointslices', list: () => discovery.listEndpointSliceForAllNamespaces() });
    for (const inf of [this.services, this.slices] as ResilientInformer<V1Service | V1EndpointSlice>[]) {
      inf.on('add', () => this.schedule()).on('update', () => this.schedule()).on('delete', () => this.schedule());
    }
    this.registerMetrics();
    await this.listBoth();
  }

  private registerMetrics(): void {
    const m = this.ctx.metrics;
    m.gauges('seine_agent_service_frontends', 'Service frontends this node serves in OVS, by kind (ClusterIP, NodePort, External)', ['kind'], () => {
      const counts = new Map<string, number>();
      for (const f of this.realized?.frontends ?? []) counts.set(f.kind, (counts.get(f.kind) ?? 0) + 1);
      return [...counts].map(([kind, value]) => ({ labels: { kind }, value }));
    });
    m.gauges('seine_agent_service_endpoints', 'Endpoints behind each Service port as this node balances it (its ClusterIP frontend), by locality (local: a pod of this node)', ['service', 'locality'], () =>
      (this.realized?.frontends ?? [])
        .filter((f) => f.kind === 'ClusterIP')
        .flatMap((f) => {
          const local = f.endpoints.filter((e) => e.local).length;
          return [
            { labels: { service: f.service, locality: 'local' }, value: local },
            { labels: { service: f.service, locality: 'remote' }, value: f.endpoints.length - local },
          ];
        }),
    );
  }

  /** Lists both kinds; while the API server cannot be reached, keeps trying in the background. */
  private async listBoth(): Promise<void> {
    try {
      await Promise.all([this.services!.start(), this.slices!.start()]);
      this.listed = true;
      await this.pass.run();
      this.log.info({ services: this.services!.list().length, slices: this.slices!.list().length }, 'services started');
    } catch (e) {
      this.log.warn({ err: String(e) }, 'cannot list Services and EndpointSlices yet; keeping what is installed');
      await Promise.all([this.services!.stop(), this.slices!.stop()]).catch(() => undefined);
      if (!this.stopped) this.retryTimer = setTimeout(() => void this.listBoth(), LIST_RETRY_MS);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of [this.timer, this.retryTimer]) if (t) clearTimeout(t);
    await Promise.all([this.services?.stop(), this.slices?.stop()]);
    await this.pass.current;
    await this.health?.close();
  }

  /** After ovs-vswitchd restarted: every Service flow and group again. */
  async restore(): Promise<void> {
    this.upToDate = false;
    this.hostInstalled = undefined;
    if (this.listed) await this.pass.run();
  }

  private schedule(): void {
    if (this.stopped || !this.listed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.pass.run();
    }, REALIZE_DELAY_MS);
  }

  private async realize(): Promise<void> {
    if (!this.listed || this.stopped) return;
    const ctx = this.ctx;
    const state = nodeServices(this.services!.list(), this.slices!.list(), { name: ctx.node.name, ...(ctx.node.podCidr ? { podCidr: ctx.node.podCidr } : {}) }, this.shares);
    if (!this.shares.changed && this.upToDate) return;
    this.upToDate = false;
    const gw = { ip: ctx.node.gatewayIp, mac: gatewayMacFor(ctx.node.ip) };
    const node: ServiceNode = { round: SERVICE_ROUND, gatewayIp: gw.ip, ...(ctx.node.podCidr ? { podCidr: ctx.node.podCidr } : {}) };
    try {
      const dp = serviceDatapath(node, state, this.groupIds, this.memo);
      // Flows first: a Service that gains endpoints is served before the kernel stops rejecting it.
      const result = await ctx.flows.sync(serviceSync(dp));
      // The userspace datapath may keep serving a cached translation to an endpoint that is gone.
      if (result.changes.length && this.control) await this.control.purgeDatapathFlows().catch((e: unknown) => this.log.warn({ err: String(e) }, 'cannot purge the datapath flow cache'));
      const host = hostState(state, gw, ctx.config.serviceCIDR, ctx.config.mode === 'chained');
      const hostText = JSON.stringify(host);
      if (hostText !== this.hostInstalled) {
        this.hostInstalled = undefined;
        await this.host!.sync(host);
        this.hostInstalled = hostText;
      }
      const healthText = JSON.stringify(state.healthChecks);
      if (healthText !== this.healthInstalled) {
        await this.health!.sync(state.healthChecks);
        this.healthInstalled = healthText;
      }
      this.upToDate = true;
      this.realized = state;
      this.log.debug({ frontends: state.frontends.length, flows: dp.flows.length, groups: dp.groups.length, changes: result.changes.length }, 'services realized');
    } catch (e) {
      this.log.warn({ err: String(e) }, 'cannot realize Services; retrying');
      if (!this.stopped) {
        if (this.retryTimer) clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => void this.pass.run(), RETRY_MS);
      }
    }
  }
}
