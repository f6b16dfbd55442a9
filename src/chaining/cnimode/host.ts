import { CommandError, run } from '../../host/exec.js';
import { IpBatch, type IpRoute } from '../../host/ip.js';
import type { MovedRoute } from './pod-link.js';

/** Routes Seine moved onto its gateway carry this protocol number, so one left by a crash is found exactly. */
export const CHAINED_ROUTE_PROTO = 119;
/** One nft netdev table per taken-over host veth (userspace datapath only). */
const ISOLATION_TABLE_PREFIX = 'seine-pod-';

const isolationTable = (dev: string): string => `${ISOLATION_TABLE_PREFIX}${dev}`;

/**
 * The node's host side in chained mode: the gateway holds the node IP (/32: the primary CNI owns every subnet),
 * the pods' routes go through it instead of their own veths, and, on the userspace datapath, a taken-over veth's
 * frames reach OVS only (the kernel would route them too: EKS pods address the veth's own MAC).
 */
export class ChainedHost {
  constructor(
    private readonly ip: IpRoute,
    readonly gatewayIf: string,
    private readonly userspaceDatapath: boolean,
  ) {}

  async ensureGateway(nodeIp: string, mtu: number): Promise<void> {
    await this.ip.apply(new IpBatch().setLink(this.gatewayIf, { mtu, up: true }).addAddr(this.gatewayIf, `${nodeIp}/32`));
    // NodePort and Service traffic enters through the gateway from addresses routed elsewhere.
    await this.ip.sysctl({ 'net.ipv4.ip_forward': 1, [`net.ipv4.conf.${this.gatewayIf}.rp_filter`]: 0, 'net.ipv4.conf.all.rp_filter': 0 });
  }

  /**
   * Takes a pod's link over: its frames to OVS only, then its routes onto the gateway (each replaced in place:
   * the kernel never lacks a route to the pod).
   */
  async takeOver(dev: string, routes: readonly MovedRoute[]): Promise<void> {
    if (this.userspaceDatapath) await this.isolate(dev);
    const batch = new IpBatch();
    for (const r of routes) batch.command('route', 'replace', r.dst, 'dev', this.gatewayIf, 'scope', 'link', 'proto', String(CHAINED_ROUTE_PROTO), ...(r.metric ? ['metric', String(r.metric)] : []));
    await this.ip.apply(batch);
  }

  /** Gives a pod's link back exactly as it was: its routes (when the veth still exists), then its frames to the kernel. */
  async giveBack(dev: string, routes: readonly MovedRoute[], devExists: boolean): Promise<void> {
    const batch = new IpBatch();
    for (const r of routes) {
      if (devExists) {
        batch.command(
          'route', 'replace', r.dst, 'dev', dev,
          ...(r.scope ? ['scope', r.scope] : []),
          ...(r.protocol ? ['proto', r.protocol] : []),
          ...(r.metric ? ['metric', String(r.metric)] : []),
          ...(r.src ? ['src', r.src] : []),
        );
      } else {
        batch.command('route', 'del', r.dst, 'dev', this.gatewayIf, 'proto', String(CHAINED_ROUTE_PROTO));
      }
    }
    await this.ip.applyBestEffort(batch);
    if (this.userspaceDatapath) await this.unisolate(dev);
  }

  /**
   * Removes the moved routes and isolation tables no record claims (an ADD or take-over that died half way, or
   * everything on release); returns what it removed.
   */
  async removeStrays(keep: { route: (dst: string) => boolean; dev: (dev: string) => boolean }): Promise<{ routes: string[]; isolations: string[] }> {
    const routes = await this.strayRoutes(keep.route);
    await this.removeRoutes(routes);
    const { stdout } = await run('nft', ['-j', 'list', 'tables', 'netdev'], { netns: this.ip.netns });
    const tables = ((JSON.parse(stdout || '{"nftables":[]}') as { nftables: Array<{ table?: { name: string } }> }).nftables ?? []).flatMap((e) => (e.table ? [e.table.name] : []));
    const isolations = tables.filter((t) => t.startsWith(ISOLATION_TABLE_PREFIX) && !keep.dev(t.slice(ISOLATION_TABLE_PREFIX.length))).map((t) => t.slice(ISOLATION_TABLE_PREFIX.length));
    for (const d of isolations) await this.unisolate(d);
    return { routes, isolations };
  }

  /** Moved routes whose destination `keep` does not claim. */
  async strayRoutes(keep: (dst: string) => boolean): Promise<string[]> {
    const routes = await this.ip.routes();
    return routes.filter((r) => r.dev === this.gatewayIf && r.protocol === String(CHAINED_ROUTE_PROTO) && !keep(r.dst.includes('/') ? r.dst : `${r.dst}/32`)).map((r) => r.dst);
  }

  async removeRoutes(dsts: readonly string[]): Promise<void> {
    const batch = new IpBatch();
    for (const d of dsts) batch.command('route', 'del', d, 'dev', this.gatewayIf, 'proto', String(CHAINED_ROUTE_PROTO));
    await this.ip.applyBestEffort(batch);
  }

  private async isolate(dev: string): Promise<void> {
    // OVS's packet socket sees a frame before the ingress hook; the kernel's IP stack only after it.
    const t = isolationTable(dev);
    const script = `table netdev ${t} {}\nflush table netdev ${t}\ntable netdev ${t} {\n  chain ingress {\n    type filter hook ingress device "${dev}" priority -500; policy drop;\n  }\n}\n`;
    await run('nft', ['-f', '-'], { netns: this.ip.netns, input: script });
  }

  private async unisolate(dev: string): Promise<void> {
    const t = isolationTable(dev);
    try {
      // Declared first, so the delete succeeds whether or not it was there.
      await run('nft', ['-f', '-'], { netns: this.ip.netns, input: `table netdev ${t} {}\ndelete table netdev ${t}\n` });
    } catch (e) {
      if (!(e instanceof CommandError)) throw e;
      // The device is gone, and with it the table's hook: declaring the table cannot bind it again.
      await run('nft', ['delete', 'table', 'netdev', t], { netns: this.ip.netns }).catch(() => undefined);
    }
  }

}
