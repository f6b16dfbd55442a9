import { KubeConfig } from '@kubernetes/client-node';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiServer, type KubeObject } from '../../../src/lab/apiserver/index.js';
import { parseControllerConfig, type ControllerConfig } from '../../../src/primary/controller/config.js';
import { eventually as eventuallyShared, sleep } from '../../../src/util/wait.js';

/** An API server in a temp dir with a kubeconfig (HTTPS, as in a cluster); stop() removes it all. */
export interface TestApi {
  api: ApiServer;
  dir: string;
  kubeconfigPath: string;
  kubeConfig(): KubeConfig;
  nodes: ReturnType<ApiServer['resource']>;
  createNode(name: string, podCIDR?: string): KubeObject;
  podCIDR(name: string): string | undefined;
  /** Warning events about a node, as `reason: message`. */
  warnings(node: string): string[];
  stop(): Promise<void>;
}

export async function startApi(): Promise<TestApi> {
  const dir = mkdtempSync(join(tmpdir(), 'seine-controller-'));
  const api = await ApiServer.start({});
  const kubeconfigPath = join(dir, 'kubeconfig');
  api.writeKubeconfig(kubeconfigPath);
  const nodes = api.resource('v1', 'nodes');
  return {
    api,
    dir,
    kubeconfigPath,
    kubeConfig() {
      const kc = new KubeConfig();
      kc.loadFromFile(kubeconfigPath);
      return kc;
    },
    nodes,
    createNode(name, podCIDR) {
      return nodes.create({ apiVersion: 'v1', kind: 'Node', metadata: { name }, spec: podCIDR ? { podCIDR, podCIDRs: [podCIDR] } : {} });
    },
    podCIDR(name) {
      const n = nodes.tryGet(name) as { spec?: { podCIDR?: string; podCIDRs?: string[] } } | undefined;
      if (n?.spec?.podCIDR && JSON.stringify(n.spec.podCIDRs) !== JSON.stringify([n.spec.podCIDR])) throw new Error(`${name}: podCIDRs ${JSON.stringify(n.spec.podCIDRs)} disagree with podCIDR ${n.spec.podCIDR}`);
      return n?.spec?.podCIDR;
    },
    warnings(node) {
      const evs = api.resource('v1', 'events').list({ namespace: 'default' }).items as Array<KubeObject & { type?: string; reason?: string; message?: string; involvedObject?: { kind?: string; name?: string } }>;
      return evs.filter((e) => e.involvedObject?.kind === 'Node' && e.involvedObject.name === node && e.type === 'Warning').map((e) => `${e.reason}: ${e.message}`);
    },
    async stop() {
      await api.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Fast leader election, so failover tests take seconds; the policy channel on loopback, any port. */
export function testConfig(over: Record<string, unknown> = {}): ControllerConfig {
  const policy = { bindAddress: '127.0.0.1', port: 0, advertiseAddress: '127.0.0.1' };
  return parseControllerConfig({ leaderElection: { leaseDurationSeconds: 1, renewDeadlineSeconds: 0.6, retryPeriodSeconds: 0.1 }, policy, ...over }, {});
}

/** Polls until fn returns something truthy, and returns it. */
/** Polls until fn returns something truthy, and returns it (a generous bound: CI machines are busy). */
export function eventually<T>(fn: () => T | Promise<T>, timeoutMs = 30_000, what = 'condition'): Promise<NonNullable<T>> {
  return eventuallyShared(what, async (saw) => {
    const v = await fn();
    saw(v);
    return v ? (v as NonNullable<T>) : undefined;
  }, timeoutMs, 25);
}

export { sleep };

/**
 * A TCP proxy in front of the API server whose link can be cut: a controller behind it loses the API server
 * as in a network partition (and cannot release its lease).
 */
export class CuttableProxy {
  private readonly sockets = new Set<Socket>();
  private cut = false;
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(target: number): Promise<CuttableProxy> {
    let proxy: CuttableProxy | undefined = undefined;
    const server = createServer((client) => {
      if (proxy!.cut) {
        client.destroy();
        return;
      }
      const upstream = connect(target, '127.0.0.1');
      proxy!.sockets.add(client).add(upstream);
      for (const s of [client, upstream]) {
        s.on('error', () => undefined);
        s.on('close', () => {
          proxy!.sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    proxy = new CuttableProxy(server, (server.address() as { port: number }).port);
    return proxy;
  }

  /** A kubeconfig for the API server that goes through this proxy. */
  kubeConfig(api: ApiServer): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromString(api.kubeconfig().replace(`127.0.0.1:${api.port}`, `127.0.0.1:${this.port}`));
    return kc;
  }

  partition(): void {
    this.cut = true;
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.partition();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
