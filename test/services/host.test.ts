// The node side of the Service proxy on real namespaces and packets. Three namespaces: the node, with its
// uplink and `seine-gw0`; "ovs", the far end of `seine-gw0` standing in for OVS after its Service tables (it
// holds the node-port virtual IP, a ClusterIP and external addresses as local addresses and answers on them, and
// plays a pod too); an external client on the uplink.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { commandLine, CommandError, run } from '../../src/host/exec.js';
import { IpBatch, IpRoute } from '../../src/host/ip.js';
import { ResourceLedger, reapStaleLedgers } from '../../src/host/ledger.js';
import { createNetns } from '../../src/host/netns.js';
import {
  HostServicesStateError,
  NFT_SERVICES_TABLE,
  NODEPORT_VIRTUAL_IP,
  SERVICE_GATEWAY_VIRTUAL_IP,
  ServiceHostNetwork,
  type HostServicesState,
  type L4Protocol,
} from '../../src/services/host/index.js';
import { eventually } from '../../src/util/wait.js';
import { captureWhile } from '../harness/capture.js';
import { TEST_LEDGER_ROOT } from '../harness/sandbox.js';

const GW_MAC = '0a:00:00:00:00:01';
const GW_IP = '10.10.0.1';
const POD_IP = '10.10.0.5';
const NODE_IP = '192.0.2.10';
const CLIENT_IP = '192.0.2.20';
const CLUSTER_IP = '10.96.0.10';
const UNSERVED_CLUSTER_IP = '10.96.0.11';
const LB_MASQUERADED = '198.51.100.7';
const LB_KEEPS_CLIENT = '198.51.100.8';
const LB_UNSERVED = '198.51.100.9';

const STATE: HostServicesState = {
  gatewayIf: 'seine-gw0',
  gatewayIp: GW_IP,
  gatewayMac: GW_MAC,
  serviceCidr: '10.96.0.0/16',
  externalAddresses: [LB_MASQUERADED, LB_KEEPS_CLIENT, LB_UNSERVED],
  rejects: [
    { ip: UNSERVED_CLUSTER_IP, protocol: 'TCP', port: 80 },
    { ip: UNSERVED_CLUSTER_IP, protocol: 'UDP', port: 53 },
    { ip: LB_UNSERVED, protocol: 'TCP', port: 443 },
  ],
  nodePorts: [
    { protocol: 'TCP', port: 30080, masquerade: true, reject: false },
    { protocol: 'TCP', port: 30081, masquerade: false, reject: false },
    { protocol: 'TCP', port: 30082, masquerade: true, reject: true },
    { protocol: 'UDP', port: 30083, masquerade: true, reject: true },
    { protocol: 'UDP', port: 30084, masquerade: true, reject: false },
  ],
  masqueradeExternal: [{ ip: LB_MASQUERADED, protocol: 'TCP', port: 443 }],
};

/**
 * Answers each TCP connection (on every address) and each UDP datagram (on the address given) with where it came
 * from and where it arrived, as JSON, then closes. Prints "ready" once everything listens.
 */
const SERVER = `
const net = require('net'), dgram = require('dgram');
const specs = process.argv.slice(1);
let pending = specs.length;
const ready = () => { if (--pending === 0) console.log('ready'); };
for (const spec of specs) {
  const [proto, addr, port] = spec.split(':');
  if (proto === 'tcp') {
    net.createServer((s) => s.end(JSON.stringify({ remote: s.remoteAddress, local: s.localAddress, port: s.localPort })))
      .listen(Number(port), addr, ready);
  } else {
    const sock = dgram.createSocket('udp4');
    sock.on('message', (m, r) => sock.send(JSON.stringify({ remote: r.address, local: addr, port: Number(port) }), r.port, r.address));
    sock.bind(Number(port), addr, ready);
  }
}`;

/** One exchange with SERVER from a namespace (from `addr[:port]`, optional): its answer, or the error code (ECONNREFUSED, TIMEOUT ...). */
const CLIENT = `
const net = require('net'), dgram = require('dgram');
const [proto, host, port, from, timeoutMs] = process.argv.slice(1);
const [bind, bindPort] = from.split(':');
const done = (r) => { console.log(JSON.stringify(r)); process.exit(0); };
setTimeout(() => done({ error: 'TIMEOUT' }), Number(timeoutMs));
if (proto === 'tcp') {
  let data = '';
  const s = net.connect({ host, port: Number(port), ...(bind ? { localAddress: bind } : {}), ...(bindPort ? { localPort: Number(bindPort) } : {}) });
  s.on('data', (b) => (data += b));
  s.on('end', () => done({ reply: JSON.parse(data) }));
  s.on('error', (e) => done({ error: e.code }));
} else {
  const s = dgram.createSocket('udp4');
  s.on('message', (m) => done({ reply: JSON.parse(String(m)) }));
  s.on('error', (e) => done({ error: e.code }));
  s.bind(Number(bindPort || 0), bind || undefined, () => s.connect(Number(port), host, () => s.send('hello')));
}`;

interface Exchange {
  reply?: { remote: string; local: string; port: number };
  error?: string;
}

/** Long enough for a loaded machine to answer; an unanswered connection to a reject would take this long. */
const EXCHANGE_TIMEOUT_MS = 10_000;

async function exchange(netns: string, proto: 'tcp' | 'udp', host: string, port: number, from = ''): Promise<Exchange> {
  const { stdout } = await run(process.execPath, ['-e', CLIENT, proto, host, String(port), from, String(EXCHANGE_TIMEOUT_MS)], { netns, timeoutMs: EXCHANGE_TIMEOUT_MS + 30_000 });
  return JSON.parse(stdout) as Exchange;
}

describe('the node side of Services (routes, node ports, masquerade, rejects) on real namespaces', () => {
  let ledger: ResourceLedger;
  let nodeNs: string;
  let ovsNs: string;
  let clientNs: string;
  let node: IpRoute;
  let services: ServiceHostNetwork;

  const nodeRoutes = async (): Promise<string[]> => (await node.routes()).filter((r) => r.protocol === '118').map((r) => `${r.dst} via ${r.gateway} dev ${r.dev} src ${r.prefsrc}`).sort();
  const neighbours = async (): Promise<string> => (await run('ip', ['neigh', 'show', 'to', SERVICE_GATEWAY_VIRTUAL_IP], { netns: nodeNs })).stdout.trim();
  const table = async (): Promise<string | undefined> =>
    run('nft', ['list', 'table', 'ip', NFT_SERVICES_TABLE], { netns: nodeNs }).then(
      (r) => r.stdout,
      (e: unknown) => {
        if (e instanceof CommandError && /No such file or directory/.test(e.stderr)) return undefined;
        throw e;
      },
    );

  beforeAll(async () => {
    await reapStaleLedgers(TEST_LEDGER_ROOT);
    const id = `v${randomBytes(3).toString('hex')}`;
    ledger = ResourceLedger.create(join(TEST_LEDGER_ROOT, id));
    const ns = async (name: string): Promise<string> => {
      ledger.netns(`${id}-${name}`);
      return createNetns(`${id}-${name}`);
    };
    nodeNs = await ns('node');
    ovsNs = await ns('ovs');
    clientNs = await ns('client');
    node = new IpRoute(nodeNs);
    // The far end of the gateway carries the gateway's MAC too: what the node sends to OVS is addressed to that
    // MAC (the virtual gateway's neighbour entry), and the stand-in's kernel must take it as its own.
    await node.apply(
      new IpBatch()
        .addVeth('seine-gw0', 'gw', { peerNetns: ovsNs, mac: GW_MAC, peerMac: GW_MAC })
        .addAddr('seine-gw0', `${GW_IP}/24`)
        .setLink('seine-gw0', { up: true })
        .addVeth('uplink', 'eth0', { peerNetns: clientNs })
        .addAddr('uplink', `${NODE_IP}/24`)
        .setLink('uplink', { up: true }),
      // Strict reverse-path filtering: the routes into OVS must be enough for every reply to pass it.
      ['sysctl', '-q', '-w', 'net.ipv4.conf.all.rp_filter=1', 'net.ipv4.conf.default.rp_filter=1', 'net.ipv4.conf.seine-gw0.rp_filter=1', 'net.ipv4.conf.uplink.rp_filter=1'],
    );
    const ovsBatch = new IpBatch().addAddr('gw', `${POD_IP}/24`).setLink('gw', { up: true });
    for (const a of [NODEPORT_VIRTUAL_IP, CLUSTER_IP, LB_MASQUERADED, LB_KEEPS_CLIENT]) ovsBatch.addAddr('lo', `${a}/32`);
    await new IpRoute(ovsNs).apply(ovsBatch.replaceRoute('default', { via: GW_IP }));
    await new IpRoute(clientNs).apply(new IpBatch().addAddr('eth0', `${CLIENT_IP}/24`).setLink('eth0', { up: true }).replaceRoute('default', { via: NODE_IP }));

    const specs = ['tcp:0.0.0.0:80', 'tcp:0.0.0.0:443', 'tcp:0.0.0.0:30080', 'tcp:0.0.0.0:30081', `udp:${NODEPORT_VIRTUAL_IP}:30084`, `udp:${NODEPORT_VIRTUAL_IP}:30085`];
    const argv = commandLine(process.execPath, ['-e', SERVER, ...specs], ovsNs);
    const server = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    ledger.process(server.pid!, 'service stand-in');
    let out = '';
    server.stdout.on('data', (b: Buffer) => (out += b.toString()));
    server.stderr.on('data', (b: Buffer) => (out += b.toString()));
    await eventually('the stand-in servers in the ovs namespace to listen', async (saw) => (saw(out), out.includes('ready') ? true : undefined), 30_000);

    services = new ServiceHostNetwork(node);
    await services.sync(STATE);
  });

  afterAll(async () => {
    await ledger?.release();
  });

  it('routes the service CIDR, the node-port address and every external address into OVS through the gateway', async () => {
    expect(await nodeRoutes()).toEqual(
      [`10.96.0.0/16`, NODEPORT_VIRTUAL_IP, LB_MASQUERADED, LB_KEEPS_CLIENT, LB_UNSERVED].map((d) => `${d} via ${SERVICE_GATEWAY_VIRTUAL_IP} dev seine-gw0 src ${GW_IP}`).sort(),
    );
    expect(await neighbours()).toBe(`${SERVICE_GATEWAY_VIRTUAL_IP} dev seine-gw0 lladdr ${GW_MAC} PERMANENT`);
    expect((await run('sysctl', ['-n', 'net.ipv4.ip_forward'], { netns: nodeNs })).stdout.trim()).toBe('1');
  });

  it('the node reaches a ClusterIP in OVS from the gateway IP, and gets the answer', async () => {
    expect(await exchange(nodeNs, 'tcp', CLUSTER_IP, 80)).toEqual({ reply: { remote: GW_IP, local: CLUSTER_IP, port: 80 } });
  });

  it('an external client reaches nodeIP:nodePort at the node-port address, masqueraded only for Cluster policy', async () => {
    expect(await exchange(clientNs, 'tcp', NODE_IP, 30080)).toEqual({ reply: { remote: GW_IP, local: NODEPORT_VIRTUAL_IP, port: 30080 } });
    expect(await exchange(clientNs, 'tcp', NODE_IP, 30081)).toEqual({ reply: { remote: CLIENT_IP, local: NODEPORT_VIRTUAL_IP, port: 30081 } });
    expect(await exchange(clientNs, 'udp', NODE_IP, 30084)).toEqual({ reply: { remote: GW_IP, local: NODEPORT_VIRTUAL_IP, port: 30084 } });
  });

  it('a pod (arriving on the gateway) and the node itself reach a node port masqueraded, even with Local policy', async () => {
    // The answer comes back from nodeIP:nodePort, where the pod sent it: conntrack undid both translations.
    expect(await exchange(ovsNs, 'tcp', NODE_IP, 30081, POD_IP)).toEqual({ reply: { remote: GW_IP, local: NODEPORT_VIRTUAL_IP, port: 30081 } });
    expect(await exchange(nodeNs, 'tcp', NODE_IP, 30081)).toEqual({ reply: { remote: GW_IP, local: NODEPORT_VIRTUAL_IP, port: 30081 } });
    expect(await exchange(nodeNs, 'tcp', GW_IP, 30080)).toEqual({ reply: { remote: GW_IP, local: NODEPORT_VIRTUAL_IP, port: 30080 } });
    // Loopback is no node-port address: nothing listens there on the node.
    expect(await exchange(nodeNs, 'tcp', '127.0.0.1', 30080)).toEqual({ error: 'ECONNREFUSED' });
  });

  it('external addresses are routed into OVS; Cluster policy ones are masqueraded', async () => {
    expect(await exchange(clientNs, 'tcp', LB_MASQUERADED, 443)).toEqual({ reply: { remote: GW_IP, local: LB_MASQUERADED, port: 443 } });
    expect(await exchange(clientNs, 'tcp', LB_KEEPS_CLIENT, 443)).toEqual({ reply: { remote: CLIENT_IP, local: LB_KEEPS_CLIENT, port: 443 } });
    // Only the listed port is masqueraded.
    expect(await exchange(clientNs, 'tcp', LB_MASQUERADED, 80)).toEqual({ reply: { remote: CLIENT_IP, local: LB_MASQUERADED, port: 80 } });
  });

  it('connections to Services without endpoints are refused at once: TCP by a reset, UDP by port unreachable', async () => {
    // Refused, not timed out: nothing in the ovs namespace answers for these (they are not its addresses).
    expect(await exchange(nodeNs, 'tcp', UNSERVED_CLUSTER_IP, 80)).toEqual({ error: 'ECONNREFUSED' });
    expect(await exchange(nodeNs, 'udp', UNSERVED_CLUSTER_IP, 53)).toEqual({ error: 'ECONNREFUSED' });
    expect(await exchange(ovsNs, 'tcp', UNSERVED_CLUSTER_IP, 80, POD_IP)).toEqual({ error: 'ECONNREFUSED' });
    expect(await exchange(clientNs, 'tcp', NODE_IP, 30082)).toEqual({ error: 'ECONNREFUSED' });
    expect(await exchange(clientNs, 'udp', NODE_IP, 30083)).toEqual({ error: 'ECONNREFUSED' });
    expect(await exchange(nodeNs, 'tcp', NODE_IP, 30082)).toEqual({ error: 'ECONNREFUSED' });
    // On the wire: the reset comes from the Service address for TCP, port unreachable for UDP.
    const lines = await captureWhile(clientNs, ['-i', 'eth0', 'tcp[tcpflags] & tcp-rst != 0 or icmp'], async () => {
      expect(await exchange(clientNs, 'tcp', LB_UNSERVED, 443)).toEqual({ error: 'ECONNREFUSED' });
      expect(await exchange(clientNs, 'udp', NODE_IP, 30083)).toEqual({ error: 'ECONNREFUSED' });
    });
    expect(lines.some((l) => l.includes(`${LB_UNSERVED}.443 > ${CLIENT_IP}.`) && /Flags \[R/.test(l))).toBe(true);
    expect(lines.some((l) => new RegExp(`${NODE_IP} > ${CLIENT_IP}: ICMP ${NODE_IP} udp port 30083 unreachable`).test(l))).toBe(true);
  });

  it('a UDP client that sent to a node port before it existed reaches it once it does', async () => {
    // Delivered to the node's own stack (nothing listens there): conntrack records the flow untranslated, and
    // would keep it so while the client keeps sending from the same port.
    const from = `${CLIENT_IP}:40085`;
    expect(await exchange(clientNs, 'udp', NODE_IP, 30085, from)).toEqual({ error: 'ECONNREFUSED' });
    const flows = async (): Promise<string> => (await run('conntrack', ['-L', '-p', 'udp', '--orig-port-dst', '30085'], { netns: nodeNs })).stdout;
    expect(await flows()).toContain(`src=${CLIENT_IP} dst=${NODE_IP} sport=40085 dport=30085`);
    try {
      await services.sync({ ...STATE, nodePorts: [...STATE.nodePorts, { protocol: 'UDP', port: 30085, masquerade: true, reject: false }] });
      expect(await exchange(clientNs, 'udp', NODE_IP, 30085, from)).toEqual({ reply: { remote: GW_IP, local: NODEPORT_VIRTUAL_IP, port: 30085 } });
      // The translated flow is the one conntrack keeps now.
      expect(await flows()).toMatch(new RegExp(`src=${CLIENT_IP} dst=${NODE_IP} sport=40085 dport=30085 src=${NODEPORT_VIRTUAL_IP} `));
    } finally {
      await services.sync(STATE);
    }
  });

  it('a second sync of the same state changes nothing; a smaller one removes what went', async () => {
    const before = { routes: await nodeRoutes(), neigh: await neighbours(), table: await table() };
    await services.sync(STATE);
    expect({ routes: await nodeRoutes(), neigh: await neighbours(), table: await table() }).toEqual(before);

    const smaller: HostServicesState = {
      ...STATE,
      externalAddresses: [LB_MASQUERADED, LB_UNSERVED],
      nodePorts: STATE.nodePorts.filter((n) => n.port !== 30081 && n.port !== 30082),
      rejects: STATE.rejects.filter((r) => r.ip !== UNSERVED_CLUSTER_IP),
    };
    try {
      await services.sync(smaller);
      expect(await nodeRoutes()).not.toContainEqual(expect.stringContaining(LB_KEEPS_CLIENT));
      expect(await table()).not.toMatch(/30081|30082|10\.96\.0\.11/);
      // No longer translated: the node's own kernel refuses the connection (nothing listens there).
      expect(await exchange(clientNs, 'tcp', NODE_IP, 30081)).toEqual({ error: 'ECONNREFUSED' });
      // No longer rejected by the node: routed into OVS, where nothing answers for that address.
      expect(await exchange(nodeNs, 'tcp', UNSERVED_CLUSTER_IP, 80)).toEqual({ error: 'TIMEOUT' });
      expect(await exchange(clientNs, 'tcp', NODE_IP, 30080)).toEqual({ reply: { remote: GW_IP, local: NODEPORT_VIRTUAL_IP, port: 30080 } });
    } finally {
      await services.sync(STATE);
    }
    expect({ routes: await nodeRoutes(), neigh: await neighbours(), table: await table() }).toEqual(before);
  });

  it('node ports that stay keep working while other Services come and go', async () => {
    const grown = (n: number): HostServicesState => ({
      ...STATE,
      nodePorts: [...STATE.nodePorts, ...Array.from({ length: n }, (_, i) => ({ protocol: 'TCP' as L4Protocol, port: 31000 + i, masquerade: i % 2 === 0, reject: i % 3 === 0 }))],
      externalAddresses: [...STATE.externalAddresses, ...Array.from({ length: n }, (_, i) => `203.0.113.${i + 1}`)],
    });
    let syncing = true;
    const syncs = (async () => {
      try {
        for (let i = 0; i < 12; i++) await services.sync(grown(i % 2 ? 200 : 20));
      } finally {
        syncing = false;
      }
    })();
    const outcomes: Exchange[] = [];
    while (syncing) outcomes.push(await exchange(clientNs, 'tcp', NODE_IP, 30080));
    await syncs;
    await services.sync(STATE);
    expect(outcomes.length).toBeGreaterThan(0);
    expect(outcomes.filter((o) => o.reply?.local !== NODEPORT_VIRTUAL_IP)).toEqual([]);
  });

  it('syncs called together run in turn: the last one called is what the node ends with', async () => {
    const before = { routes: await nodeRoutes(), table: await table() };
    const other: HostServicesState = { ...STATE, externalAddresses: Array.from({ length: 100 }, (_, i) => `203.0.113.${i + 1}`), nodePorts: [] };
    await Promise.all([services.sync(other), services.sync(STATE), services.sync(other), services.sync(STATE)]);
    expect({ routes: await nodeRoutes(), table: await table() }).toEqual(before);
  });

  it('an invalid state is refused before anything on the node changes', async () => {
    const before = { routes: await nodeRoutes(), table: await table() };
    await expect(services.sync({ ...STATE, externalAddresses: [...STATE.externalAddresses, '203.0.113.1; flush ruleset'] })).rejects.toThrow(HostServicesStateError);
    await expect(services.sync({ ...STATE, nodePorts: [...STATE.nodePorts, { protocol: 'TCP', port: 30080, masquerade: false, reject: false }] })).rejects.toThrow(HostServicesStateError);
    expect({ routes: await nodeRoutes(), table: await table() }).toEqual(before);
  });

  it('1,000 Services in one sync: their node ports are translated, their addresses routed', async () => {
    const big: HostServicesState = {
      ...STATE,
      externalAddresses: [...STATE.externalAddresses, ...Array.from({ length: 1000 }, (_, i) => `203.0.${113 + (i >> 8)}.${i & 255}`)],
      rejects: [...STATE.rejects, ...Array.from({ length: 1000 }, (_, i) => ({ ip: `10.96.${10 + (i >> 8)}.${i & 255}`, protocol: 'TCP' as L4Protocol, port: 8080 }))],
      nodePorts: [...STATE.nodePorts, ...Array.from({ length: 1000 }, (_, i) => ({ protocol: 'UDP' as L4Protocol, port: 31000 + i, masquerade: true, reject: false }))],
    };
    try {
      await services.sync(big);
      expect((await nodeRoutes()).length).toBe(5 + 1000);
      expect(await exchange(clientNs, 'tcp', NODE_IP, 30080)).toEqual({ reply: { remote: GW_IP, local: NODEPORT_VIRTUAL_IP, port: 30080 } });
      expect(await exchange(nodeNs, 'tcp', '10.96.13.231', 8080)).toEqual({ error: 'ECONNREFUSED' });
    } finally {
      await services.sync(STATE);
    }
    expect((await nodeRoutes()).length).toBe(5);
  });

  it('remove() leaves no table, no proto-118 route and no neighbour, and a later sync puts them back', async () => {
    await services.remove();
    expect(await table()).toBeUndefined();
    expect(await nodeRoutes()).toEqual([]);
    expect(await neighbours()).toBe('');
    // Removing again is fine.
    await services.remove();
    expect(await exchange(clientNs, 'tcp', NODE_IP, 30080)).toEqual({ error: 'ECONNREFUSED' });
    await services.sync(STATE);
    expect(await exchange(clientNs, 'tcp', NODE_IP, 30080)).toEqual({ reply: { remote: GW_IP, local: NODEPORT_VIRTUAL_IP, port: 30080 } });
    await services.remove();
    expect(await table()).toBeUndefined();
  });
});
