import { join } from 'node:path';
import type { InstalledFlow } from '../../ovs/openflow/index.js';
import type { NodeContext } from '../../agent/context.js';
import type { PolicyRuleInfo } from '../../agent/api-types.js';
import type { AgentFeature, FeatureInspection, PodAttachmentHook, PodSandbox } from '../../agent/feature.js';
import { EventRecorder } from '../../k8s/events.js';
import { VswitchdControl } from '../../ovs/vswitchd-control.js';
import { EXT, isPodNetworkPort } from '../../primary/interfacestore/store.js';
import { logger } from '../../util/log.js';
import { SerialPass } from '../../util/serial.js';
import { bearerTokenSource, controllerEndpointSource } from '../channel/discovery.js';
import { policyScope } from '../datapath/layout.js';
import { policySync, type RuleProblem } from '../datapath/flows.js';
import type { PolicyDatapath } from '../datapath/state.js';
import type { PolicyRef } from '../model/types.js';
import { networkMemberUid } from '../model/network-uid.js';
import { ruleCounters } from './counters.js';
import { RealizedReporter } from './realized-reporter.js';
import { resolveShare, RuleIds, type NodeShare } from './resolve.js';
import { SecondaryPolicyRealizer } from './secondary-realizer.js';
import { ShareClient } from './share-client.js';
import { ShareStore } from './share-store.js';

/** Changes come in bursts (a share update, a few ports): one realization after the burst. */
const REALIZE_DELAY_MS = 20;
/** A realization that failed (ovs-vswitchd away) is tried again after this long. */
const RETRY_MS = 2000;
/**
 * How long a new pod's ADD waits for the controller to have taken the pod into account (normally it has: the pod
 * was bound before its sandbox started). Past this the pod goes ahead and gets its rules when the share comes.
 */
export const KNOWN_WAIT_MS = 5000;
/** The two rule metrics of one scrape (and a `seine get rules` at the same time) share one reading of the flows. */
const SCRAPE_REUSE_MS = 1000;

interface RuleCount {
  labels: Record<'policy_kind' | 'namespace' | 'policy' | 'network' | 'rule' | 'direction' | 'action', string>;
  packets: number;
  bytes: number;
}

/** What the pods' ports were when last realized: a change means realizing again. */
const portsSignature = (ports: ReadonlyMap<string, number[]>): string => JSON.stringify([...ports].sort());

/** What a rule is, for its counters and logs. */
interface RuleInfo {
  policy: PolicyRef;
  rule: string;
  direction: string;
  action: string;
}

/** The share split by where it is enforced: the pod network (br-int) and the secondary networks' bridges. */
function splitShare(share: NodeShare): { primary: NodeShare; secondary: NodeShare } {
  return {
    primary: { policies: share.policies.filter((p) => !p.policy.network), groups: share.groups },
    secondary: { policies: share.policies.filter((p) => !!p.policy.network), groups: share.groups },
  };
}

/** A policy rule as a Traceflow names it. */
type RuleRef = { kind: string; namespace?: string; name: string; rule: string };
const ruleRef = (r: RuleInfo | undefined): RuleRef | undefined => (r ? { kind: r.policy.kind, ...(r.policy.namespace ? { namespace: r.policy.namespace } : {}), name: r.policy.name, rule: r.rule } : undefined);

/**
 * NetworkPolicy, ClusterNetworkPolicy and MultiNetworkPolicy on this node: receives the node's share of the controller's computation
 * (kept on disk, so that a restarted agent enforces the last one it had before the controller answers), resolves
 * it against the pods attached to the integration bridge, and installs the policy tables as one cookie scope in
 * one bundle. A pod a policy applies to gets its rules before its ADD returns; a leaving pod's port loses them
 * before it is removed (its OpenFlow port number may be given to the next pod). MultiNetworkPolicies go to the
 * bridges of Seine's secondary networks (secondary-realizer.ts); a new secondary port carries traffic only once
 * they are in place (its admission gate).
 */
export class NetworkPolicyFeature implements AgentFeature {
  readonly name = 'network-policy';
  /** Each rule's counters on the agent's read-only API, from the same reading as the metrics. */
  readonly inspection: FeatureInspection = {
    policyRules: async () =>
      (await this.ruleCounts()).map(({ labels: l, packets, bytes }) => ({
        kind: l.policy_kind as PolicyRuleInfo['kind'],
        namespace: l.namespace,
        name: l.policy,
        network: l.network,
        rule: l.rule,
        direction: l.direction as PolicyRuleInfo['direction'],
        action: l.action,
        packets,
        bytes,
      })),
  };
  private readonly log = logger('policy');
  private ctx!: NodeContext;
  private store!: ShareStore;
  private client?: ShareClient;
  /** The userspace datapath's control socket: its flow cache is purged after each policy change. */
  private control?: VswitchdControl;
  private reporter?: RealizedReporter;
  private snapshotsSeen = 0;
  private readonly ids = new RuleIds();
  private readonly pass = new SerialPass(() => this.realize(), () => this.stopped);
  private stopped = false;
  private realizeTimer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private counting?: { at: number; counts: Promise<RuleCount[]> };
  private unwatchPorts?: () => void;
  /** Sandboxes being deleted: their ports no longer count as their pods' (until the port is gone). */
  private readonly leaving = new Set<string>();
  /** JSON of the state last installed (undefined: install whatever it is). */
  private installed?: string;
  private current: PolicyDatapath = { round: 0, rules: [], isolations: [] };
  private rules = new Map<number, RuleInfo>();
  private portsSeen = '';
  /** ADDs waiting for the controller to know their pod. */
  private readonly waiters = new Set<() => void>();
  /** The rules the datapath could not express at the last sync (left out, reported once). */
  private problems: RuleProblem[] = [];
  private secondary?: SecondaryPolicyRealizer;
  /** Whether the last sync of the secondary bridges failed (a gated port then stays down). */
  private secondaryFailed = false;
  /** Rule id -> what it is, per secondary bridge. */
  private secondaryRules = new Map<string, Map<number, RuleInfo>>();
  private unregisterGate?: () => void;
  private events?: EventRecorder;
  /** The zone clashes last told (Events are written once per change). */
  private toldClashes = '[]';

  async start(ctx: NodeContext): Promise<void> {
    this.ctx = ctx;
    if (ctx.config.ovs.datapathType === 'netdev') this.control = new VswitchdControl(ctx.config.ovs.rundir);
    this.store = new ShareStore(join(ctx.config.stateDir, 'policy', 'share.json'));
    this.events = new EventRecorder(ctx.core, { component: 'seine-agent', host: ctx.node.name });
    this.secondary = new SecondaryPolicyRealizer({ vswitch: ctx.vswitch, rundir: ctx.config.ovs.rundir, round: ctx.bridge.round, log: this.log });
    const loaded = this.store.load();
    if (loaded.problem) this.log.warn({ problem: loaded.problem }, 'kept policy share unreadable; waiting for the controller');
    else if (loaded.loaded) this.log.info({ ...this.store.size }, 'enforcing the kept policy share until the controller answers');
    // Read from the switch when scraped (one dump serves both), not polled: a node without policies spawns nothing.
    const labels = ['policy_kind', 'namespace', 'policy', 'network', 'rule', 'direction', 'action'] as const;
    ctx.metrics.counters('seine_policy_rule_packets_total', 'Packets of the new connections a policy rule decided on this node (action Accept, Deny or Pass; isolation drops under rule "isolation-<direction>"; network: a MultiNetworkPolicy\'s secondary network)', labels, async () => (await this.ruleCounts()).map((c) => ({ labels: c.labels, value: c.packets })));
    ctx.metrics.counters('seine_policy_rule_bytes_total', 'Bytes of the new connections a policy rule decided on this node', labels, async () => (await this.ruleCounts()).map((c) => ({ labels: c.labels, value: c.bytes })));
    // Before the node takes pods (and before ovs-vswitchd stops waiting for flows): what was kept, on the ports there are.
    await this.pass.run();
    this.unwatchPorts = ctx.vswitch.cache.onChange(() => {
      if (this.portsSignature() !== this.portsSeen) this.schedule();
    });
    // Only while some MultiNetworkPolicy is in the share: without one, a new port has nothing to wait for.
    this.unregisterGate = ctx.portAdmission.register({ holds: () => this.store.hasNetworkPolicies(), open: (port) => this.admitSecondaryPort(port.externalIds) });
    const kc = ctx.kubeConfig;
    const endpoint = controllerEndpointSource(kc, { namespace: ctx.config.networkPolicy.controllerNamespace });
    const token = bearerTokenSource(kc);
    this.reporter = new RealizedReporter({ endpoint, token, node: ctx.node.name });
    this.client = new ShareClient({
      endpoint,
      token,
      node: ctx.node.name,
      store: this.store,
      onShare: () => {
        // A new connection (perhaps to a new controller): it hears what is installed here again.
        if (this.client && this.client.snapshots !== this.snapshotsSeen) {
          this.snapshotsSeen = this.client.snapshots;
          this.reporter?.resend();
        }
        this.schedule();
        for (const w of this.waiters) w();
      },
    });
    this.client.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.client?.stop();
    this.reporter?.stop();
    for (const w of [...this.waiters]) w();
    this.unwatchPorts?.();
    this.unregisterGate?.();
    for (const t of [this.realizeTimer, this.retryTimer]) if (t) clearTimeout(t);
    await this.pass.current;
    for (const name of ['seine_policy_rule_packets_total', 'seine_policy_rule_bytes_total']) this.ctx?.metrics.registry.removeSingleMetric(name);
  }

  /** After ovs-vswitchd restarted: every policy flow again, on the ports as they are numbered now. */
  async restore(): Promise<void> {
    this.installed = undefined;
    this.secondary?.reset();
    await this.pass.run();
  }

  get podAttachments(): PodAttachmentHook {
    return {
      afterAdd: (sandbox) => this.podAdded(sandbox),
      beforeDel: (containerId) => this.podLeaving(containerId),
    };
  }

  /** A new pod that policies apply to gets their rules now, before its ADD returns and it can send. */
  private async podAdded(sandbox: PodSandbox): Promise<void> {
    const uid = sandbox.pod.metadata?.uid;
    if (!uid) return;
    // The controller takes a pod into account once it is bound to a node: one that is not bound here (a sandbox
    // made outside the kubelet) never appears in this node's share, so there is nothing to wait for.
    const boundHere = sandbox.pod.spec?.nodeName === this.ctx.node.name;
    if (boundHere && !(await this.known(uid))) this.log.warn({ pod: `${sandbox.pod.metadata?.namespace}/${sandbox.pod.metadata?.name}`, waitedMs: KNOWN_WAIT_MS }, 'the controller has not taken the new pod into account yet; its policies follow when it has');
    if (!this.store.appliesTo(uid)) return;
    await this.pass.run();
  }

  /**
   * A secondary network's new pod port (down until this returns): once the controller has taken the pod's entry on
   * that network into account, its MultiNetworkPolicies are installed. Fails when they could not be.
   */
  private async admitSecondaryPort(ids: Readonly<Record<string, string>>): Promise<void> {
    const podUid = ids['pod-uid'];
    const network = ids['network'];
    if (!podUid || !network) return;
    const member = networkMemberUid(podUid, network);
    // As for eth0: a pod not bound here (a sandbox made outside the kubelet) never appears in this node's share.
    const pod = this.ctx.pods.get(ids['pod-name'] ?? '', ids['pod-namespace']);
    const boundHere = pod?.metadata?.uid === podUid && pod.spec?.nodeName === this.ctx.node.name;
    if (boundHere && !(await this.known(member))) this.log.warn({ pod: `${ids['pod-namespace']}/${ids['pod-name']}`, network, waitedMs: KNOWN_WAIT_MS }, 'the controller has not taken the new attachment into account yet; its policies follow when it has');
    await this.pass.run();
    if (this.secondaryFailed) throw new Error(`the MultiNetworkPolicy flows of ${network} could not be installed on this node`);
  }

  /** Whether the controller has taken the pod (or its entry on a network) into account, waiting a while for it. */
  private async known(uid: string): Promise<boolean> {
    if (this.store.knows(uid) || !this.client || this.client.snapshots === 0) return true;
    return this.untilKnown(uid);
  }

  private untilKnown(uid: string): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (known: boolean): void => {
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve(known);
      };
      const check = (): void => {
        if (this.store.knows(uid)) done(true);
        else if (this.stopped) done(false);
      };
      const timer = setTimeout(() => done(false), KNOWN_WAIT_MS);
      this.waiters.add(check);
    });
  }

  /** A leaving sandbox's port stops being its pod's now, so that no rule outlives it on a reused port number. */
  private async podLeaving(containerId: string): Promise<void> {
    const port = this.ctx.vswitch.cache.portsOf(this.ctx.config.ovs.bridge).find((p) => isPodNetworkPort(p.externalIds) && p.externalIds[EXT.containerId] === containerId);
    const ofport = port ? this.ctx.vswitch.cache.iface(port.name)?.ofport : undefined;
    if (ofport === undefined) return;
    this.leaving.add(containerId);
    const used = this.current.rules.some((r) => r.applied.some((a) => a.ofport === ofport)) || this.current.isolations.some((i) => i.ofport === ofport);
    if (used) await this.pass.run();
  }

  private schedule(): void {
    if (this.stopped || this.realizeTimer) return;
    this.realizeTimer = setTimeout(() => {
      this.realizeTimer = undefined;
      void this.pass.run();
    }, REALIZE_DELAY_MS);
  }

  /** Pod UID -> OpenFlow ports of its eth0 on the integration bridge (leaving sandboxes left out). */
  private podPorts(): Map<string, number[]> {
    const cache = this.ctx.vswitch.cache;
    const out = new Map<string, number[]>();
    const present = new Set<string>();
    for (const p of cache.portsOf(this.ctx.config.ovs.bridge)) {
      const x = p.externalIds;
      if (!isPodNetworkPort(x) || !x[EXT.podUid]) continue;
      const containerId = x[EXT.containerId] ?? '';
      present.add(containerId);
      const ofport = cache.iface(p.name)?.ofport;
      if (this.leaving.has(containerId) || ofport === undefined || ofport <= 0) continue;
      out.set(x[EXT.podUid], [...(out.get(x[EXT.podUid]) ?? []), ofport]);
    }
    for (const c of this.leaving) if (!present.has(c)) this.leaving.delete(c);
    return out;
  }

  /** What the pods' ports on every bridge are: a change means realizing again. */
  private portsSignature(): string {
    return `${portsSignature(this.podPorts())}|${JSON.stringify(this.secondary?.ports(this.leaving).map((p) => [p.bridge, p.ofport, p.member, p.mac]) ?? [])}`;
  }

  private async realize(): Promise<void> {
    if (this.stopped) return;
    const ports = this.podPorts();
    this.portsSeen = this.portsSignature();
    const share = this.store.share();
    const { primary, secondary } = splitShare(share);
    const refs = share.policies.map((p) => p.policy.ref);
    const secondaryProblems = await this.realizeSecondary(secondary);
    const state = { ...resolveShare(primary, (uid) => ports.get(uid) ?? [], this.ids, this.ctx.bridge.round), nodeAddresses: [this.ctx.node.gatewayIp, this.ctx.node.ip] };
    const text = JSON.stringify(state);
    if (text === this.installed) {
      // Same flows (a new generation that changes nothing here, say): installed all the same.
      this.reportRealized(refs, this.problems, secondaryProblems);
      return;
    }
    const problems: RuleProblem[] = [];
    const request = policySync(state, problems);
    try {
      const result = await this.ctx.flows.sync(request);
      // The userspace datapath may keep serving a cached flow with the verdict of before: a connection that was
      // dropped stays dropped, or one now denied still passes, for as long as its packets keep the entry alive.
      if (result.changes.length && this.control) await this.control.purgeDatapathFlows().catch((e: unknown) => this.log.warn({ err: String(e) }, 'cannot purge the datapath flow cache'));
      this.installed = text;
      this.current = state;
      this.rules = this.ruleInfo(primary.policies.map((p) => p.policy), this.current, this.ids);
      this.reportRealized(refs, problems, secondaryProblems);
      this.log.info({ rules: state.rules.length, isolations: state.isolations.length, flows: request.flows.length, changes: result.changes.length }, 'policy flows synced');
    } catch (e) {
      this.log.error({ err: e instanceof Error ? e.message : String(e) }, 'policy flows not synced; retrying');
      if (!this.retryTimer && !this.stopped) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.installed = undefined;
          void this.pass.run();
        }, RETRY_MS);
      }
    }
    if (JSON.stringify(problems) !== JSON.stringify(this.problems)) {
      this.problems = problems;
      for (const p of problems) this.log.error({ rule: this.describe(p.ruleId), problem: p.message }, 'policy rule cannot be enforced; left out (it admits nothing)');
    }
  }

  /**
   * The MultiNetworkPolicies on the secondary bridges; returns the uids of the policies not (fully) installed. A
   * failure is retried like the pod network's.
   */
  private async realizeSecondary(share: NodeShare): Promise<Set<string>> {
    const failed = new Set<string>();
    if (!this.secondary) return failed;
    try {
      const result = await this.secondary.realize(share, this.leaving);
      if (result.changes && this.control) await this.control.purgeDatapathFlows().catch((e: unknown) => this.log.warn({ err: String(e) }, 'cannot purge the datapath flow cache'));
      this.secondaryFailed = false;
      const byUid = new Map(share.policies.map((p) => [p.policy.ref.uid, p.policy]));
      this.secondaryRules = new Map([...this.secondary.current].map(([bridge, r]) => [bridge, this.ruleInfo(share.policies.map((p) => p.policy), r, r.ids)]));
      for (const p of result.problems) {
        for (const [bridge, r] of this.secondary.current) {
          const uid = r.ids.keyOf(p.ruleId)?.split('/')[0];
          if (uid && byUid.has(uid)) {
            failed.add(uid);
            this.log.error({ bridge, rule: r.ids.keyOf(p.ruleId), problem: p.message }, 'MultiNetworkPolicy rule cannot be enforced; left out (it admits nothing)');
          }
        }
      }
      for (const c of result.zoneClashes) {
        // Not realized here: the policy's Realized condition keeps this node pending, and an Event says why.
        for (const p of share.policies) if (p.policy.network === c.network) failed.add(p.policy.ref.uid);
      }
      this.tellZoneClashes(share, result.zoneClashes);
    } catch (e) {
      this.secondaryFailed = true;
      for (const p of share.policies) failed.add(p.policy.ref.uid);
      this.log.error({ err: e instanceof Error ? e.message : String(e) }, 'secondary network policy flows not synced; retrying');
      if (!this.retryTimer && !this.stopped) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.secondary?.reset();
          void this.pass.run();
        }, RETRY_MS);
      }
    }
    return failed;
  }

  /** A Warning Event on each MultiNetworkPolicy of a network this node cannot enforce (once per change). */
  private tellZoneClashes(share: NodeShare, clashes: ReadonlyArray<{ network: string; other: string }>): void {
    const text = JSON.stringify(clashes);
    if (text === this.toldClashes) return;
    this.toldClashes = text;
    for (const c of clashes) {
      this.log.error({ network: c.network, other: c.other }, 'two policed overlay networks on this node share a conntrack zone (their VNIs share the low 12 bits); the second is not enforced here');
      for (const { policy } of share.policies) {
        if (policy.network !== c.network || !policy.ref.namespace) continue;
        const uid = policy.ref.uid.slice(0, policy.ref.uid.lastIndexOf('@'));
        void this.events?.record(
          { kind: 'MultiNetworkPolicy', apiVersion: 'k8s.cni.cncf.io/v1beta2', name: policy.ref.name, namespace: policy.ref.namespace, uid },
          'Warning',
          'NetworkNotEnforced',
          `${c.network}: not enforced on node ${this.ctx.node.name}, where ${c.other} is policed too and their VNIs share the low 12 bits that make the conntrack zone`,
        );
      }
    }
  }

  /** Every policy of the share counts as installed, but one with a rule that could not be. */
  private reportRealized(refs: readonly PolicyRef[], problems: readonly RuleProblem[], secondaryFailed: ReadonlySet<string> = new Set()): void {
    const failed = new Set([...problems.map((p) => this.ids.keyOf(p.ruleId)?.split('/')[0]), ...secondaryFailed]);
    this.reporter?.set(Object.fromEntries(refs.filter((r) => !failed.has(r.uid)).map((r) => [r.uid, r.generation])));
  }

  /** Rule id -> what it is, from the rule keys (policy uid / rule name). */
  private ruleInfo(
    policies: ReadonlyArray<{ ref: PolicyRef; rules: ReadonlyArray<{ name: string; label?: string }> }>,
    current: Pick<PolicyDatapath, 'rules' | 'isolations'>,
    ids: RuleIds,
  ): Map<number, RuleInfo> {
    const out = new Map<number, RuleInfo>();
    const byUid = new Map(policies.map((p) => [p.ref.uid, p]));
    for (const r of current.rules) {
      const key = ids.keyOf(r.id);
      const policy = key ? byUid.get(key.slice(0, key.indexOf('/'))) : undefined;
      const name = key?.slice(key.indexOf('/') + 1);
      const rule = policy?.rules.find((x) => x.name === name);
      if (policy && name) out.set(r.id, { policy: policy.ref, rule: rule?.label ? `${name} (${rule.label})` : name, direction: r.direction, action: r.action });
    }
    for (const i of current.isolations) {
      const key = ids.keyOf(i.ruleId);
      const policy = key ? byUid.get(key.slice(0, key.indexOf('/'))) : undefined;
      if (policy) out.set(i.ruleId, { policy: policy.ref, rule: key!.slice(key!.indexOf('/') + 1), direction: i.direction, action: 'Deny' });
    }
    return out;
  }

  /** The MultiNetworkPolicy and rule a rule id of a secondary bridge's stage stands for. */
  secondaryRuleOf(bridge: string, ruleId: number): RuleRef | undefined {
    return ruleRef(this.secondaryRules.get(bridge)?.get(ruleId));
  }

  /** The policy and rule a rule id of the pod network's stage stands for (a Traceflow names the rule that decided). */
  ruleOf(ruleId: number): RuleRef | undefined {
    return ruleRef(this.rules.get(ruleId));
  }

  private describe(ruleId: number): string {
    const r = this.rules.get(ruleId);
    return r ? `${r.policy.kind} ${r.policy.namespace ? `${r.policy.namespace}/` : ''}${r.policy.name} rule ${r.rule}` : `rule ${ruleId}`;
  }

  /** The rules' flow counters, read once for the two metrics of one scrape. */
  private ruleCounts(): Promise<RuleCount[]> {
    const now = Date.now();
    if (!this.counting || now - this.counting.at > SCRAPE_REUSE_MS) this.counting = { at: now, counts: this.readRuleCounts() };
    return this.counting.counts;
  }

  private async readRuleCounts(): Promise<RuleCount[]> {
    if (this.stopped) return [];
    const out: RuleCount[] = [];
    const count = (flowsOf: InstalledFlow[], rules: ReadonlyMap<number, RuleInfo> | undefined): void => {
      for (const c of ruleCounters(flowsOf)) {
        const r = rules?.get(c.ruleId);
        if (!r) continue;
        out.push({ labels: { policy_kind: r.policy.kind, namespace: r.policy.namespace ?? '', policy: r.policy.name, network: r.policy.network ?? '', rule: r.rule, direction: r.direction, action: r.action }, packets: Number(c.packets), bytes: Number(c.bytes) });
      }
    };
    try {
      if (this.rules.size) count(await this.ctx.flows.dumpFlows({ cookie: policyScope() }), this.rules);
    } catch {
      // ovs-vswitchd away: the next scrape.
    }
    for (const b of (await this.secondary?.dumpFlows((bridge) => (this.secondaryRules.get(bridge)?.size ?? 0) > 0)) ?? []) count(b.flows, this.secondaryRules.get(b.bridge));
    return out;
  }

}
