import { createConnection, type Socket } from 'node:net';

/** Pipes a client connection to a unix socket; either end closing closes both. */
export function spliceToUnix(client: Socket, socketPath: string): void {
  const upstream = createConnection(socketPath);
  const end = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', end).on('close', end);
  upstream.on('error', end).on('close', end);
  client.pipe(upstream);
  upstream.pipe(client);
}
