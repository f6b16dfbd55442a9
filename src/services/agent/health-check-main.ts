// The health check helper (NetnsHealthChecks): answers health check node ports in the network namespace it was
// started in, as the JSON lines on its stdin say; exits when stdin closes.
import { createInterface } from 'node:readline';
import { InProcessHealthChecks, type HealthCheck } from './health-check.js';

const listeners = new InProcessHealthChecks();
let chain = Promise.resolve();
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const checks = JSON.parse(line) as HealthCheck[];
  chain = chain.then(() => listeners.sync(checks));
});
lines.on('close', () => {
  void chain.then(() => listeners.close()).then(() => process.exit(0));
});
