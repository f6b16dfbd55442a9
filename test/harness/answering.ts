// Answering servers and a connecting client for tests that need to know which pod answered and what source
// address it saw (Services, chained mode): `node -e` scripts run inside pods' or nodes' network namespaces.
import { run } from '../../src/host/exec.js';

/**
 * The servers (CommonJS for `node -e`): TCP on 8080 and UDP on 8081, each answer "<pod> <client address>". On
 * SIGTERM a server keeps serving for TERM_LINGER_MS (default none), as a pod with a preStop delay does, for a test
 * whose terminating endpoint must still be there while the proxy takes it out; the others' pods go at once.
 */
export const SERVER = `
const net = require('net');
const dgram = require('dgram');
const me = process.env.POD_NAME;
net.createServer((c) => { c.on('error', () => {}); c.end(me + ' ' + c.remoteAddress); }).listen(8080, '0.0.0.0');
const u = dgram.createSocket('udp4');
u.on('message', (m, p) => u.send(me + ' ' + p.address, p.port, p.address));
u.bind(8081, '0.0.0.0');
process.on('SIGTERM', () => setTimeout(() => process.exit(0), Number(process.env.TERM_LINGER_MS || 0)));`;

/**
 * Connections one after another (argv: protocol, host, port, count, wait per try in ms, pause between in ms);
 * prints one JSON array of answers: the server's text, "timeout" or "error:CODE". UDP sockets are connected, so an
 * ICMP port unreachable shows as error:ECONNREFUSED.
 */
export const CLIENT = `
const net = require('net');
const dgram = require('dgram');
const [proto, host, port, count, waitMs, pauseMs] = process.argv.slice(1);
const once = () => new Promise((done) => {
  if (proto === 'tcp') {
    let a = '';
    const s = net.connect({ host, port: +port });
    const t = setTimeout(() => { s.destroy(); done(a ? 'incomplete:' + a : 'timeout'); }, +waitMs);
    s.on('data', (d) => (a += d));
    s.on('end', () => { clearTimeout(t); s.destroy(); done(a); });
    s.on('error', (e) => { clearTimeout(t); done('error:' + e.code); });
  } else {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => { s.close(); done('timeout'); }, +waitMs);
    s.on('message', (m) => { clearTimeout(t); s.close(); done(m.toString()); });
    s.on('error', (e) => { clearTimeout(t); s.close(); done('error:' + e.code); });
    s.connect(+port, host, () => s.send('x'));
  }
});
(async () => {
  const out = [];
  for (let i = 0; i < +count; i++) {
    out.push(await once());
    if (+pauseMs) await new Promise((r) => setTimeout(r, +pauseMs));
  }
  process.stdout.write(JSON.stringify(out));
})();`;

/** A connection inside the lab answers in milliseconds; a busy CI machine gets generous room before it counts as lost. */
export const WAIT_MS = 5000;
/** How long the proxy may take to follow a change of Services or endpoints (API server -> agents -> OVS, on a busy machine). */
export const SETTLE_MS = 60_000;

export interface Answer {
  pod?: string;
  client?: string;
  failure?: string;
}

export const parseAnswer = (raw: string): Answer => {
  const m = /^([^:\s]+) (\S+)$/.exec(raw);
  return m ? { pod: m[1], client: m[2] } : { failure: raw };
};

/** `count` connections from a network namespace, one after another; the answers. */
export async function connect(netns: string, proto: 'tcp' | 'udp', host: string, port: number, count: number, pauseMs = 0): Promise<Answer[]> {
  const { stdout } = await run(process.execPath, ['-e', CLIENT, proto, host, String(port), String(count), String(WAIT_MS), String(pauseMs)], { netns, timeoutMs: count * (WAIT_MS + pauseMs) + 30_000 });
  return (JSON.parse(stdout) as string[]).map(parseAnswer);
}
