import { join } from 'node:path';
import type { NodeContext } from '../../agent/context.js';
import type { AgentFeature, FeatureInspection, NewSandbox, PodAttachmentHook, PodSandbox, SandboxRef } from '../../agent/feature.js';
import { logger } from '../../util/log.js';
import { OvsSecondaryDatapath } from '../datapath/index.js';
import { SecondaryNetworkManager } from './manager.js';
import { inspectedAttachments } from './records.js';

/** Pool addresses of pods that no longer exist are looked for this often. */
const POOL_GC_INTERVAL_MS = 60_000;
/** The default network's name in the pods' network-status. */
const DEFAULT_NETWORK_NAME = 'seine';

/**
 * Secondary networks: their own bridges on the node's Open vSwitch, driven by NetworkAttachmentDefinitions and
 * the pods' networks annotation. Attaches after the pod network's eth0, detaches before it, follows annotation
 * changes of running pods (hot-plug) and frees the cluster-wide pool addresses of pods that are gone.
 */
export class SecondaryNetworksFeature implements AgentFeature, PodAttachmentHook {
  readonly name = 'secondary';
  private readonly log = logger('secondary');
  private ctx?: NodeContext;
  private manager?: SecondaryNetworkManager;
  private datapath?: OvsSecondaryDatapath;
  private poolGcTimer?: NodeJS.Timeout;
  private stopped = false;

  get podAttachments(): PodAttachmentHook {
    return this;
  }

  readonly inspection: FeatureInspection = {
    podInterfaces: () => (this.manager && this.datapath ? inspectedAttachments(this.manager.attachments(), this.datapath.attachments()) : []),
  };

  /** The node's secondary bridges as Traceflow reads and writes them (its flows go through the datapath's writers). */
  get traceBridges(): Pick<OvsSecondaryDatapath, 'bridgeNames' | 'bridgePorts' | 'writer'> | undefined {
    return this.datapath;
  }

  async start(ctx: NodeContext): Promise<void> {
    this.ctx = ctx;
    const cfg = ctx.config;
    this.datapath = new OvsSecondaryDatapath({
      vswitch: ctx.vswitch,
      ovsRundir: cfg.ovs.rundir,
      host: ctx.host,
      nodeIp: ctx.node.ip,
      userspaceDatapath: cfg.ovs.datapathType === 'netdev',
      round: ctx.bridge.round,
      admission: ctx.portAdmission,
    });
    this.manager = new SecondaryNetworkManager({
      kubeConfig: ctx.kubeConfig,
      nodeName: ctx.node.name,
      hostNetns: cfg.hostNetns,
      datapath: this.datapath,
      delegateCacheDir: join(cfg.stateDir, 'secondary-cni'),
      cniConfDir: cfg.cniConfDir,
      defaultNetworkName: DEFAULT_NETWORK_NAME,
      uplinks: cfg.secondaryNetworks.uplinks,
      mtu: { vlan: ctx.mtu.underlay, overlay: ctx.mtu.pod },
      podNetwork: { bridge: cfg.ovs.bridge, mtu: ctx.mtu.pod },
    });
    await this.manager.start();
    const manager = this.manager;
    ctx.metrics.gauges('seine_agent_secondary_attachments', 'Secondary network interfaces of pods on this node, by network (NAD namespace/name) and kind (seine: on a Seine bridge; delegated: another CNI plugin)', ['network', 'kind'], () =>
      manager.attachmentCounts().map((c) => ({ labels: { network: c.network, kind: c.kind }, value: c.count })),
    );
    ctx.metrics.counters('seine_agent_ippool_writes_total', 'IPPool status writes by this agent, by outcome (ok; conflict: another allocator wrote first, so it is retried; error)', ['outcome'], () => {
      const s = manager.allocator.stats;
      return [
        { labels: { outcome: 'ok' }, value: s.writes - s.conflicts - s.failedWrites },
        { labels: { outcome: 'conflict' }, value: s.conflicts },
        { labels: { outcome: 'error' }, value: s.failedWrites },
      ];
    });
    void ctx.podsSynced.then(() => {
      if (this.stopped) return;
      this.collectPoolAddresses();
      this.poolGcTimer = setInterval(() => this.collectPoolAddresses(), POOL_GC_INTERVAL_MS);
    });
  }

  /** Overlay bridges' tunnels and flows, after ovs-vswitchd restarted. */
  async restore(): Promise<void> {
    await this.datapath?.restore();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.poolGcTimer) clearInterval(this.poolGcTimer);
    await this.manager?.stop();
  }

  alongsideAdd(sandbox: NewSandbox): Promise<void> {
    return this.manager!.attachAlongside(sandbox);
  }

  afterAdd(sandbox: PodSandbox): Promise<void> {
    return this.manager!.attachPod(sandbox);
  }

  beforeDel(containerId: string): Promise<void> {
    return this.manager!.detachPod(containerId);
  }

  gc(collect: (containerId: string) => boolean): Promise<void> {
    return this.manager!.gc(collect);
  }

  sandboxes(): SandboxRef[] {
    return this.manager?.sandboxesWithAttachments() ?? [];
  }

  podUpdated(sandbox: PodSandbox): Promise<void> {
    return this.manager!.reconcilePod(sandbox.pod, sandbox.containerId);
  }

  adopt(sandbox: PodSandbox): void {
    this.manager!.adoptSandbox(sandbox);
  }

  /** Frees the pool addresses this node holds for pods that no longer exist. */
  private collectPoolAddresses(): void {
    const ctx = this.ctx!;
    const pods = ctx.pods.list().map((p) => ({ namespace: p.metadata!.namespace!, name: p.metadata!.name!, uid: p.metadata!.uid }));
    void this.manager!.allocator.gc({ pods }, { node: ctx.node.name })
      .then((freed) => freed.length && this.log.info({ freed: freed.map((a) => `${a.pool}/${a.ip}`) }, 'freed pool addresses of vanished pods'))
      .catch((e: unknown) => this.log.warn({ err: String(e) }, 'IP pool GC failed'));
  }
}
