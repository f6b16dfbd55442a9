// What the Service benchmark observes with: the programs it runs in pods and on the external host, the Service and
// EndpointSlice objects it writes, table-44 flow monitors on every node, a watch on its EndpointSlices, and the
// per-node figures of the Service tables (flow counts, groups, agent memory).
import { Watch, type V1EndpointSlice, type V1Service } from '@kubernetes/client-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Lab } from '../../src/lab/lab.js';
import { FlowWriter } from '../../src/ovs/openflow/writer.js';
import { ownsGroup, ServiceTable } from '../../src/services/datapath/layout.js';
import { SERVICE_NAME_LABEL } from '../../src/services/model/desired.js';
import { eventually, median, sleep } from '../primary/common.js';

/** Every object the bench writes carries this label. */
export const LABEL = 'seine.dev/bench-services';

/**
 * The server pod's second container (CommonJS for `node -e`): 8080 accepts and closes when the client does
 * (connections per second), 8081 echoes (a connection held through an agent restart).
 */
export const SERVER = `
const net = require('net');
net.createServer((s) => s.on('error', () => {})).listen(8080, '0.0.0.0');
net.createServer((s) => { s.on('error', () => {}); s.pipe(s); }).listen(8081, '0.0.0.0');`;

/** On the external host: answers every address routed to it with the address it was reached on, then closes. */
export const ADDRESS_SERVER = `
const net = require('net');
net.createServer((s) => { s.on('error', () => {}); s.end(s.localAddress); }).listen(+process.argv[1], '0.0.0.0');`;

/**
 * Connections per second (argv: host, port, seconds, in flight): each worker opens a TCP connection, closes it
 * as soon as it is established, waits for the server's close and opens the next; prints {done, failed, errors,
 * ms}. A connection counts once it closed cleanly. The client closes first, so TIME_WAIT stays on its side,
 * where tcp_tw_reuse lets it reuse ports (a server in TIME_WAIT answers a reused port's SYN with a challenge
 * ACK, and the client's RST to that is invalid to conntrack: such connections stall until TIME_WAIT ends).
 */
export const CPS_CLIENT = `
const net = require('net');
const [host, port, secs, inflight] = process.argv.slice(1);
const t0 = Date.now();
const end = t0 + secs * 1000;
let done = 0, failed = 0;
const errors = {};
const one = () => new Promise((resolve) => {
  const s = net.connect({ host, port: +port });
  let connected = false, over = false;
  const finish = (ok, why) => {
    if (over) return;
    over = true;
    clearTimeout(timer);
    s.destroy();
    if (ok) done++; else { failed++; errors[why] = (errors[why] || 0) + 1; }
    resolve();
  };
  const timer = setTimeout(() => finish(false, 'timeout'), 3000);
  s.on('connect', () => { connected = true; s.end(); });
  s.on('error', (e) => finish(false, e.code));
  s.on('close', () => finish(connected, 'closed before connecting'));
});
const worker = async () => { while (Date.now() < end) await one(); };
Promise.all(Array.from({ length: +inflight }, worker)).then(() => process.stdout.write(JSON.stringify({ done, failed, errors, ms: Date.now() - t0 })));`;

/** Connections one after another (argv: host, port, count); prints the answers (the server's text, or error:CODE). */
export const ANSWERS_CLIENT = `
const net = require('net');
const [host, port, count] = process.argv.slice(1);
const once = () => new Promise((done) => {
  let a = '';
  const s = net.connect({ host, port: +port });
  const t = setTimeout(() => { s.destroy(); done('timeout'); }, 3000);
  s.on('data', (d) => (a += d));
  s.on('end', () => { clearTimeout(t); s.destroy(); done(a); });
  s.on('error', (e) => { clearTimeout(t); done('error:' + e.code); });
});
(async () => { const out = []; for (let i = 0; i < +count; i++) out.push(await once()); process.stdout.write(JSON.stringify(out)); })();`;

/**
 * One connection held open (argv: host, port): a line every 50 ms, echoed back. On SIGTERM prints {sent, echoed,
 * maxGapMs, error}: maxGapMs is the longest wait for an echo, error set if the connection broke.
 */
export const HOLD_CLIENT = `
const net = require('net');
const [host, port] = process.argv.slice(1);
let sent = 0, echoed = 0, maxGapMs = 0, last = Date.now(), error = null, buf = '';
const s = net.connect({ host, port: +port });
s.on('data', (d) => {
  buf += d;
  const n = buf.split('\\n').length - 1;
  buf = buf.slice(buf.lastIndexOf('\\n') + 1);
  const now = Date.now();
  if (n) { maxGapMs = Math.max(maxGapMs, now - last); last = now; echoed += n; }
});
s.on('error', (e) => (error = e.code));
s.on('close', () => (error = error || 'closed'));
const timer = setInterval(() => { if (!error) { s.write(sent + '\\n'); sent++; } }, 50);
process.on('SIGTERM', () => {
  clearInterval(timer);
  maxGapMs = Math.max(maxGapMs, Date.now() - last - 50);
  process.stdout.write(JSON.stringify({ sent, echoed, maxGapMs, error }));
  process.exit(0);
});`;

/** A Service without selector (its EndpointSlices are the bench's), one TCP port. */
export function selectorlessService(name: string, port = 80): V1Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default', labels: { [LABEL]: 'yes' } }, spec: { ports: [{ port, protocol: 'TCP' }] } };
}

/** An EndpointSlice of `service` with these ready addresses on one TCP port. */
export function slice(service: string, name: string, addresses: readonly string[], port: number): V1EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: 'default', labels: { [SERVICE_NAME_LABEL]: service, 'endpointslice.kubernetes.io/managed-by': 'bench.seine.dev', [LABEL]: 'yes' } },
    addressType: 'IPv4',
    ports: [{ port, protocol: 'TCP' }],
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true } })),
  };
}

/** The i-th address after `base` (dotted quad arithmetic). */
export function nthAddress(base: string, i: number): string {
  const n = base.split('.').reduce((a, o) => a * 256 + Number(o), 0) + i;
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

const dotted = (n: number): string => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');

type FlowEvent = 'ADDED' | 'DELETED';

/**
 * One `ovs-ofctl monitor` per node on br-int's EndpointDNAT table: when the flow of each endpoint address (its
 * reg3 match) was added and deleted. ovs-vswitchd notifies as each bundle commits; a line is timestamped when it
 * reaches this process, so "installed" is known without polling.
 */
export class EndpointFlowMonitors {
  private readonly procs: ChildProcess[] = [];
  /** `${node}/${address}` -> its events, in order. */
  private readonly events = new Map<string, Array<{ kind: FlowEvent; t: number }>>();
  private readonly waiters = new Set<() => void>();

  constructor(private readonly lab: Lab) {}

  async start(): Promise<void> {
    for (const node of this.lab.nodes) {
      const name = node.plan.name;
      const proc = spawn('ovs-ofctl', ['monitor', node.ovs.bridgeMgmt('br-int'), `watch:!initial,!actions,table=${ServiceTable.EndpointDNAT}`], { env: node.ovs.env, stdio: ['ignore', 'pipe', 'pipe'] });
      this.lab.ledger.process(proc.pid!, `table ${ServiceTable.EndpointDNAT} monitor of ${name} (services bench)`);
      this.procs.push(proc);
      const onLine = (line: string): void => {
        const m = /event=(ADDED|DELETED)\b.*\breg3=0x([0-9a-f]+)/.exec(line);
        if (!m) return;
        const key = `${name}/${dotted(parseInt(m[2]!, 16))}`;
        const list = this.events.get(key) ?? [];
        list.push({ kind: m[1] as FlowEvent, t: performance.now() });
        this.events.set(key, list);
        for (const w of this.waiters) w();
      };
      // ovs-ofctl writes flow-monitor updates unbuffered on stderr; stdout is read too, in case.
      createInterface({ input: proc.stderr! }).on('line', onLine);
      createInterface({ input: proc.stdout! }).on('line', onLine);
    }
    await sleep(500);
    for (const p of this.procs) if (p.exitCode !== null) throw new Error(`ovs-ofctl monitor exited (${p.exitCode})`);
  }

  /** When the flow of `address` was first added (or deleted) on `node` at or after `since`; waits for it. */
  when(node: string, address: string, kind: FlowEvent, since: number, timeoutMs = 60_000): Promise<number> {
    const find = (): number | undefined => this.events.get(`${node}/${address}`)?.find((e) => e.kind === kind && e.t >= since)?.t;
    const t = find();
    if (t !== undefined) return Promise.resolve(t);
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const at = find();
        if (at === undefined) return;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve(at);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`the table ${ServiceTable.EndpointDNAT} flow of ${address} not ${kind.toLowerCase()} on ${node} after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  stop(): void {
    for (const p of this.procs) {
      p.kill('SIGTERM');
      this.lab.ledger.forgetProcess(p.pid!);
    }
  }
}

/** The bench's EndpointSlices as a client of the API server sees them: when each version of each slice arrived. */
export class SliceWatch {
  readonly events: Array<{ t: number; type: string; name: string; addresses: Set<string> }> = [];
  private abort?: AbortController;

  constructor(private readonly lab: Lab) {}

  async start(): Promise<void> {
    this.abort = await new Watch(this.lab.kubeConfig).watch(
      '/apis/discovery.k8s.io/v1/endpointslices',
      { labelSelector: LABEL },
      (type: string, s: V1EndpointSlice) => {
        this.events.push({ t: performance.now(), type, name: s.metadata?.name ?? '', addresses: new Set((s.endpoints ?? []).flatMap((e) => e.addresses ?? [])) });
      },
      () => undefined,
    );
  }

  /** The first event after `since` for which `pred` holds. */
  seen(what: string, since: number, pred: (e: SliceWatch['events'][number]) => boolean, timeoutMs = 60_000): Promise<number> {
    return eventually(what, async () => this.events.find((e) => e.t >= since && pred(e))?.t, timeoutMs, 1);
  }

  stop(): void {
    this.abort?.abort();
  }
}

/** The flows of each Service table (40-45) and the proxy's groups on a node. */
export interface ServiceFigures {
  tables: number[];
  groups: number;
  buckets: number;
}

export const SERVICE_TABLES: readonly number[] = [ServiceTable.Entry, ServiceTable.SessionAffinity, ServiceTable.ServiceLB, ServiceTable.AffinityLearn, ServiceTable.EndpointDNAT, ServiceTable.Hairpin];

export async function serviceFigures(writer: FlowWriter): Promise<ServiceFigures> {
  const tables = await Promise.all(SERVICE_TABLES.map(async (table) => (await writer.countFlows({ table })).flows));
  const groups = (await writer.dumpGroups()).filter((g) => ownsGroup(g.id));
  return { tables, groups: groups.length, buckets: groups.reduce((a, g) => a + g.buckets.length, 0) };
}

/** VmRSS in kB of a process. */
function rssOf(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
}

/** Each node's agent VmRSS (kB), the median of 3 readings 500 ms apart (V8 collects when it likes). */
export async function agentRss(lab: Lab): Promise<number[]> {
  const pids = lab.nodes.map((n) => lab.agents.get(n.plan.name)!.pid!);
  const samples: number[][] = pids.map(() => []);
  for (let i = 0; i < 3; i++) {
    if (i) await sleep(500);
    pids.forEach((p, k) => samples[k]!.push(rssOf(p)));
  }
  return samples.map(median);
}
