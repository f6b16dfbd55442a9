import { createServer, type AddressInfo, type Server } from 'node:net';
import { spliceToUnix } from './splice.js';

// The lab's agents share the machine's network namespace, so each cannot have the fixed metrics port a node
// would give it. Each serves its endpoint on a unix socket instead, and the lab makes it reachable from the
// machine as http://127.0.0.1:PORT, a port the kernel picks once per lab: it stays the same across restarts
// of the process behind it, as a node's address would.

/** A TCP port on loopback that splices each connection to a unix socket. */
export class LoopbackRelay {
  private constructor(
    private readonly server: Server,
    readonly socketPath: string,
  ) {}

  static async open(socketPath: string): Promise<LoopbackRelay> {
    const server = createServer((client) => spliceToUnix(client, socketPath));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new LoopbackRelay(server, socketPath);
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The endpoint's base URL, e.g. http://127.0.0.1:40123. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}
