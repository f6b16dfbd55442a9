import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { logger } from '../../util/log.js';

/** An externalTrafficPolicy Local Service whose health check node port this node answers. */
export interface HealthCheck {
  /** `namespace/name`. */
  service: string;
  port: number;
  /** Endpoints of the Service on this node that traffic may go to. */
  localEndpoints: number;
}

/** What kube-proxy answers: 200 while the node has a local endpoint (a load balancer sends it traffic), else 503. */
export function healthCheckAnswer(check: HealthCheck): { status: number; body: string } {
  const [namespace, name] = check.service.split('/');
  return {
    status: check.localEndpoints > 0 ? 200 : 503,
    body: JSON.stringify({ service: { namespace, name }, localEndpoints: check.localEndpoints, serviceProxyHealthy: true }),
  };
}

/** Where health checks are answered: in this process, or in a helper inside the node's network namespace. */
export interface HealthCheckListeners {
  sync(checks: readonly HealthCheck[]): Promise<void>;
  close(): Promise<void>;
}

/** One HTTP listener per health check node port, on every address of the network namespace it runs in. */
export class InProcessHealthChecks implements HealthCheckListeners {
  private readonly log = logger('services');
  private readonly servers = new Map<number, { server: Server; check: HealthCheck }>();

  async sync(checks: readonly HealthCheck[]): Promise<void> {
    const want = new Map(checks.map((c) => [c.port, c]));
    for (const [port, s] of this.servers) {
      if (want.has(port)) continue;
      this.servers.delete(port);
      await new Promise<void>((r) => s.server.close(() => r()));
    }
    for (const [port, check] of want) {
      const have = this.servers.get(port);
      if (have) {
        have.check = check;
        continue;
      }
      const entry = { server: createServer(), check };
      entry.server.on('request', (_req, res) => {
        const a = healthCheckAnswer(entry.check);
        res.writeHead(a.status, { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff' }).end(a.body);
      });
      const listening = await new Promise<boolean>((resolve) => {
        entry.server.once('error', (e) => {
          this.log.warn({ port, service: check.service, err: String(e) }, 'cannot answer the health check node port');
          resolve(false);
        });
        entry.server.listen(port, '0.0.0.0', () => resolve(true));
      });
      if (listening) this.servers.set(port, entry);
    }
  }

  async close(): Promise<void> {
    await this.sync([]);
  }
}

/** Restart delay of the helper process, should it exit. */
const RESPAWN_MS = 1000;

/**
 * The listeners in another network namespace (the lab's nodes are namespaces the agent does not run in): a small
 * helper process inside it answers, fed the health checks as JSON lines on its stdin. It exits when that pipe
 * closes, so it never outlives the agent.
 */
export class NetnsHealthChecks implements HealthCheckListeners {
  private readonly log = logger('services');
  private child?: ChildProcess;
  private last: readonly HealthCheck[] = [];
  private closed = false;
  private respawn?: NodeJS.Timeout;

  constructor(private readonly netns: string) {}

  async sync(checks: readonly HealthCheck[]): Promise<void> {
    this.last = checks;
    if (!checks.length && !this.child) return;
    this.ensureChild().stdin!.write(`${JSON.stringify(checks)}\n`);
  }

  private ensureChild(): ChildProcess {
    if (this.child) return this.child;
    const main = fileURLToPath(new URL('./health-check-main.js', import.meta.url));
    const child = spawn('nsenter', [`--net=${this.netns}`, '--', process.execPath, main], { stdio: ['pipe', 'ignore', 'inherit'] });
    child.stdin!.on('error', () => undefined);
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      if (this.closed) return;
      this.log.warn({ code, signal }, 'health check helper exited; starting it again');
      this.respawn = setTimeout(() => void this.sync(this.last), RESPAWN_MS);
    });
    this.child = child;
    return child;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.respawn) clearTimeout(this.respawn);
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.stdin!.end();
    await exited;
  }
}
