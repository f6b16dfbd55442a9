import type { KubeConfig } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { CoreV1Api } from '@kubernetes/client-node';
import { hostname } from 'node:os';
import { ChainController } from '../../chaining/controller/controller.js';
import { EventRecorder } from '../../k8s/events.js';
import { startPolicyChannel, type PolicyChannel } from '../../policy/channel/server.js';
import { PolicyController } from '../../policy/controller/controller.js';
import { TraceflowController } from '../../traceflow/controller/controller.js';
import { HealthServer } from '../../util/health-server.js';
import { logger, type Logger } from '../../util/log.js';
import { firstExternalIPv4, type ControllerConfig } from './config.js';
import { registerControllerMetrics } from './metrics.js';
import { defaultIdentity, LeaderElector } from './leader.js';
import { NodeIpamController } from './nodeipam.js';

export interface ControllerOptions {
  config: ControllerConfig;
  kubeConfig: KubeConfig;
  /** Lease holder identity; default $POD_NAME, else hostname_pid. */
  identity?: string;
  log?: Logger;
}

/** A leader that has not renewed for this long past its lease reports itself unhealthy (client-go's margin). */
const HEALTH_MARGIN_MS = 20_000;

/**
 * The cluster controller: competes for the leader lease (when enabled) and, while leading, runs the node IPAM
 * controller, the service chain controller, and the policy controller with its channel to the agents. Losing the
 * lease stops them; winning it again starts fresh ones from new lists (and a new channel certificate).
 */
export class Controller {
  readonly identity: string;
  private readonly log: Logger;
  private readonly events: EventRecorder;
  private elector: LeaderElector | undefined;
  private ipam: NodeIpamController | undefined;
  private chains: ChainController | undefined;
  private traces: TraceflowController | undefined;
  private policy: { controller: PolicyController; channel: Promise<PolicyChannel | undefined> } | undefined;
  /** Served at /metrics on the health port. */
  readonly metrics = new Registry();
  private readonly health = new HealthServer({ live: () => this.healthy, ready: () => this.started, registry: this.metrics });
  private started = false;

  constructor(private readonly opts: ControllerOptions) {
    this.identity = opts.identity ?? defaultIdentity(process.env, hostname(), process.pid);
    this.log = opts.log ?? logger('controller', { identity: this.identity });
    this.events = new EventRecorder(opts.kubeConfig.makeApiClient(CoreV1Api), { component: 'seine-controller', host: this.identity });
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const { config } = this.opts;
    if (config.healthPort || config.healthSocket) {
      registerControllerMetrics(this.metrics, this.opts.kubeConfig, { leading: () => this.isLeader, replicaHealth: () => this.chains?.replicaHealth() ?? [] });
    }
    if (config.healthPort) await this.health.listen({ port: config.healthPort });
    if (config.healthSocket) await this.health.listen({ path: config.healthSocket });
    this.log.info({ leaderElection: config.leaderElection.enabled, allocateNodeCIDRs: config.allocateNodeCIDRs, clusterCIDR: config.clusterCIDR, nodeCIDRMaskSize: config.nodeCIDRMaskSize }, 'controller starting');
    if (!config.leaderElection.enabled) {
      await this.startActing();
      return;
    }
    const le = config.leaderElection;
    this.elector = new LeaderElector({
      kubeConfig: this.opts.kubeConfig,
      namespace: le.namespace,
      leaseName: le.leaseName,
      identity: this.identity,
      leaseDurationMs: le.leaseDurationSeconds * 1000,
      renewDeadlineMs: le.renewDeadlineSeconds * 1000,
      retryPeriodMs: le.retryPeriodSeconds * 1000,
      onStartedLeading: () => this.startActing(),
      onStoppedLeading: () => this.stopActing(),
    });
    this.elector.start();
  }

  /** Stops acting, releases the lease, closes the health endpoint. */
  async stop(): Promise<void> {
    if (this.elector) await this.elector.stop();
    else await this.stopActing();
    await this.health.close();
    this.log.info('controller stopped');
  }

  /** Whether this replica is the one acting (always, without leader election). */
  get isLeader(): boolean {
    return this.started && (this.elector ? this.elector.isLeader : true);
  }

  /** The running node IPAM controller (while leading). */
  get nodeIpam(): NodeIpamController | undefined {
    return this.ipam;
  }

  /** The running service chain controller (while leading). */
  get chainController(): ChainController | undefined {
    return this.chains;
  }

  /** The running policy controller (while leading, with the policy channel enabled). */
  get policyController(): PolicyController | undefined {
    return this.policy?.controller;
  }

  /** The health endpoint's port (0 when there is none). */
  get healthPort(): number {
    return this.health.port;
  }

  /** False when this replica leads but its lease has lapsed well past expiry (then a restart is the cure). */
  get healthy(): boolean {
    const e = this.elector;
    if (!e || !e.isLeader) return true;
    return Date.now() - e.lastRenewTime < this.opts.config.leaderElection.leaseDurationSeconds * 1000 + HEALTH_MARGIN_MS;
  }

  private startActing(): Promise<void> {
    // Set synchronously, so a stopActing() that comes before start() resolves stops these very instances.
    const chains = new ChainController({ kubeConfig: this.opts.kubeConfig, events: this.events });
    this.chains = chains;
    // Not awaited: until the ServiceChain CRD is installed its informer keeps retrying, node IPAM must not wait.
    chains.start().catch((e: unknown) => this.log.error({ err: String(e) }, 'chain controller failed to start'));
    const traces = new TraceflowController({ kubeConfig: this.opts.kubeConfig });
    this.traces = traces;
    traces.start().catch((e: unknown) => this.log.error({ err: String(e) }, 'traceflow controller failed to start'));
    if (this.opts.config.policy.enabled) this.startPolicy();
    if (!this.opts.config.allocateNodeCIDRs) return Promise.resolve();
    const ipam = new NodeIpamController({
      kubeConfig: this.opts.kubeConfig,
      clusterCIDR: this.opts.config.clusterCIDR,
      nodeCIDRMaskSize: this.opts.config.nodeCIDRMaskSize,
      events: this.events,
    });
    this.ipam = ipam;
    return ipam.start();
  }

  /**
   * The policy controller, and the channel that serves agents their shares (until the computation has listed
   * everything, agents are told to come back). Neither is awaited: node IPAM must not wait for them.
   */
  private startPolicy(): void {
    const { config, kubeConfig } = this.opts;
    const controller = new PolicyController({ kubeConfig, registry: this.metrics });
    controller.start().catch((e: unknown) => this.log.error({ err: String(e) }, 'policy controller failed to start'));
    const advertiseAddress = config.policy.advertiseAddress ?? firstExternalIPv4();
    if (!advertiseAddress) this.log.error('policy channel not started: no policy.advertiseAddress, no $POD_IP and no non-internal IPv4 address');
    const channel = advertiseAddress
      ? startPolicyChannel({
          kubeConfig,
          controller,
          namespace: config.leaderElection.namespace,
          bindAddress: config.policy.bindAddress,
          port: config.policy.port,
          advertiseAddress,
          agentUsers: config.policy.agentUsers,
        }).catch((e: unknown) => {
          this.log.error({ err: String(e), bindAddress: config.policy.bindAddress, port: config.policy.port }, 'policy channel failed to start: agents get no policy updates');
          return undefined;
        })
      : Promise.resolve(undefined);
    this.policy = { controller, channel };
  }

  private async stopActing(): Promise<void> {
    const ipam = this.ipam;
    const chains = this.chains;
    const policy = this.policy;
    const traces = this.traces;
    this.ipam = undefined;
    this.chains = undefined;
    this.traces = undefined;
    this.policy = undefined;
    const stopPolicy = async (): Promise<void> => {
      if (!policy) return;
      await (await policy.channel)?.close();
      await policy.controller.stop();
      policy.controller.unregisterMetrics();
    };
    await Promise.all([ipam?.stop(), chains?.stop(), traces?.stop(), stopPolicy()]);
  }
}
