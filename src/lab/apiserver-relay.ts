import { createServer } from 'node:net';
import { spliceToUnix } from './splice.js';

// Runs inside the lab's external-host namespace: accepts TCP on ADDRESS:PORT and splices each connection to the
// API server's Unix socket. Loopback does not cross network namespaces but Unix sockets do, so this is how pods
// and nodes reach the API server at the address of the `kubernetes` Service's endpoint.
//
//   node apiserver-relay.js ADDRESS PORT SOCKET

function main(argv: string[]): void {
  const [address, portText, socketPath] = argv;
  const port = Number(portText);
  if (!address || !socketPath || !Number.isInteger(port) || port < 1 || port > 65535) {
    process.stderr.write('usage: apiserver-relay ADDRESS PORT SOCKET\n');
    process.exit(2);
  }
  const server = createServer((client) => spliceToUnix(client, socketPath));
  server.on('error', (e) => {
    process.stderr.write(`apiserver-relay: ${e.message}\n`);
    process.exit(1);
  });
  server.listen({ host: address, port }, () => process.stdout.write(`apiserver-relay: ${address}:${port} -> ${socketPath}\n`));
  const stop = (): void => {
    server.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop).on('SIGINT', stop);
}

main(process.argv.slice(2));
