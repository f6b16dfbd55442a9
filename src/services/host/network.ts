import { CommandError, run } from '../../host/exec.js';
import { IpBatch, sysctlCommand, type IpRoute } from '../../host/ip.js';
import { deleteUntranslatedCommand, parseUdpFlows, staleNodePortFlows } from './conntrack.js';
import { servicesRuleset, servicesRulesetRemoval } from './nft.js';
import { serviceRoutesBatch, serviceRoutesRemoval, isServiceRoute, type Neighbour } from './routes.js';
import { normalizeHostServicesState, RETURN_MARK, RETURN_RULE_PRIORITIES, RETURN_TABLE, SERVICE_GATEWAY_VIRTUAL_IP, type HostServicesState } from './state.js';

/** Deletes the chained return routing (rules and table); best effort, as parts may be gone. */
export function returnRoutingRemoval(): IpBatch {
  return new IpBatch()
    .command('rule', 'del', 'priority', String(RETURN_RULE_PRIORITIES.fromGateway))
    .command('rule', 'del', 'priority', String(RETURN_RULE_PRIORITIES.marked))
    .command('route', 'flush', 'table', String(RETURN_TABLE));
}

/**
 * The node's kernel side of the Service proxy: routes Service addresses into OVS through the gateway,
 * translates node ports to the node-port virtual IP, masquerades what must come back through this node, and
 * rejects connections to Services without endpoints. OVS does the load balancing.
 */
export class ServiceHostNetwork {
  private forwardingOn = false;
  /** UDP node ports translated since the last sync (none known after a restart). */
  private translatedUdpPorts = new Set<number>();
  /** Calls run one after the other, in call order: each reads what the previous one left. */
  private queue: Promise<unknown> = Promise.resolve();

  /** `ip`: the node's host network; `ip.netns` is where nft runs too. */
  constructor(private readonly ip: IpRoute) {}

  /**
   * Converges the node to `state`: routes and neighbour first (only what differs), then the whole nft table in
   * one transaction, then the untranslated UDP flows of node ports it newly translates. Idempotent. An invalid
   * state throws HostServicesStateError and changes nothing.
   */
  sync(state: HostServicesState): Promise<void> {
    return this.inTurn(() => this.converge(state));
  }

  private async converge(state: HostServicesState): Promise<void> {
    const desired = normalizeHostServicesState(state);
    const script = servicesRuleset(desired);
    const [routes, neighbours] = await Promise.all([this.ip.routes(), this.neighbours()]);
    // Node ports and external addresses are forwarded between the uplink and the gateway. The pod network
    // turns forwarding on too; this keeps Services working where it runs chained and does not.
    const followUps = this.forwardingOn ? [] : [sysctlCommand({ 'net.ipv4.ip_forward': 1 })];
    await this.ip.apply(serviceRoutesBatch(desired, routes, neighbours), ...followUps);
    this.forwardingOn = true;
    if (desired.chained) await this.ensureReturnRouting(desired.gatewayIf);
    await run('nft', ['-f', '-'], { netns: this.ip.netns, input: script });
    const translated = new Set(desired.nodePorts.filter((n) => n.protocol === 'UDP' && !n.reject).map((n) => n.port));
    const fresh = new Set([...translated].filter((p) => !this.translatedUdpPorts.has(p)));
    if (fresh.size) await this.forgetUntranslatedFlows(fresh);
    this.translatedUdpPorts = translated;
  }

  /** See conntrack.ts: entries that would keep UDP clients of a new node port on the node's own stack. */
  private async forgetUntranslatedFlows(ports: ReadonlySet<number>): Promise<void> {
    const [{ stdout }, addrs] = await Promise.all([run('conntrack', ['-L', '-p', 'udp'], { netns: this.ip.netns }), this.ip.addrs()]);
    const local = new Set(addrs.flatMap((l) => l.addr_info.filter((a) => a.family === 'inet' && !a.local.startsWith('127.')).map((a) => a.local)));
    for (const flow of staleNodePortFlows(parseUdpFlows(stdout), ports, local)) {
      try {
        await run('conntrack', deleteUntranslatedCommand(flow), { netns: this.ip.netns });
      } catch (e) {
        // Gone by itself meanwhile (conntrack exits 1 when it deleted nothing).
        if (!(e instanceof CommandError && /0 flow entries/.test(e.stderr))) throw e;
      }
    }
  }

  /**
   * Chained: marked replies (see HostServicesState.chained) are routed into OVS by RETURN_TABLE; the ones OVS sends
   * back out of the gateway keep the main table. The table's route goes with the gateway's device: put back each time.
   */
  private async ensureReturnRouting(gatewayIf: string): Promise<void> {
    const mark = `0x${RETURN_MARK.toString(16)}/0x${RETURN_MARK.toString(16)}`;
    const { stdout } = await run('ip', ['-4', '-json', 'rule', 'show'], { netns: this.ip.netns });
    const have = new Set((stdout.trim() ? (JSON.parse(stdout) as Array<{ priority?: number }>) : []).map((r) => r.priority));
    const batch = new IpBatch().command('route', 'replace', 'default', 'via', SERVICE_GATEWAY_VIRTUAL_IP, 'dev', gatewayIf, 'onlink', 'table', String(RETURN_TABLE));
    if (!have.has(RETURN_RULE_PRIORITIES.fromGateway)) batch.command('rule', 'add', 'priority', String(RETURN_RULE_PRIORITIES.fromGateway), 'iif', gatewayIf, 'fwmark', mark, 'lookup', 'main');
    if (!have.has(RETURN_RULE_PRIORITIES.marked)) batch.command('rule', 'add', 'priority', String(RETURN_RULE_PRIORITIES.marked), 'fwmark', mark, 'lookup', String(RETURN_TABLE));
    await this.ip.apply(batch);
  }

  /** Removes everything it owns: the table, every proto-118 route and the gateway neighbour. Forwarding stays on. */
  remove(): Promise<void> {
    return this.inTurn(() => this.removeAll());
  }

  private async removeAll(): Promise<void> {
    await run('nft', ['-f', '-'], { netns: this.ip.netns, input: servicesRulesetRemoval() });
    await this.ip.applyBestEffort(returnRoutingRemoval());
    // A route can go with its link between reading and deleting: delete best effort, then check.
    const [routes, neighbours] = await Promise.all([this.ip.routes(), this.neighbours()]);
    await this.ip.applyBestEffort(serviceRoutesRemoval(routes, neighbours));
    const [left, leftNeighbours] = await Promise.all([this.ip.routes(), this.neighbours()]);
    const stuck = [...left.filter(isServiceRoute).map((r) => `route ${r.dst}`), ...leftNeighbours.map((n) => `neighbour ${n.dst} dev ${n.dev}`)];
    if (stuck.length) throw new Error(`could not remove the Service routes: ${stuck.join(', ')} still there`);
    this.forwardingOn = false;
    this.translatedUdpPorts = new Set();
  }

  private inTurn(work: () => Promise<void>): Promise<void> {
    const turn = this.queue.then(work);
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  /** Neighbour entries of the gateway virtual IP, on any device. */
  private async neighbours(): Promise<Neighbour[]> {
    const { stdout } = await run('ip', ['-json', 'neigh', 'show', 'to', SERVICE_GATEWAY_VIRTUAL_IP], { netns: this.ip.netns });
    return stdout.trim() ? (JSON.parse(stdout) as Neighbour[]) : [];
  }
}
