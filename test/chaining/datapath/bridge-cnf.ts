// CNFs and traffic on a sandbox bridge, for the chain stage's real-bridge tests: CNF namespaces whose function
// interfaces join the bridge, the three CNF kinds of the end-to-end tests, and what they saw.
import { run, succeeds } from '../../../src/host/exec.js';
import { IpBatch, IpRoute } from '../../../src/host/ip.js';
import { createNetns } from '../../../src/host/netns.js';
import { NEXT_HOP_IP } from '../../../src/chaining/datapath/flows.js';
import type { HopReplica } from '../../../src/chaining/datapath/state.js';
import { eventually } from '../../../src/util/wait.js';
import type { OvsSandbox, SandboxPod } from '../../harness/sandbox.js';

export interface Cnf {
  netns: string;
  ip: IpRoute;
  ports: Array<{ ifname: string; ofport: number; mac: string }>;
}

/** A CNF pod: its own netns with function interfaces joined to `bridge` (with an access tag if given), no addresses. */
export async function addCnf(sb: OvsSandbox, bridge: string, name: string, ifnames: string[], firstOfport: number, tag?: number): Promise<Cnf> {
  const ns = `${sb.id}-${name}`;
  sb.ledger.netns(ns);
  const netns = await createNetns(ns);
  const ip = new IpRoute(netns);
  const ports: Cnf['ports'] = [];
  for (const [i, ifname] of ifnames.entries()) {
    const hostIf = `${sb.id}${name}${i}`;
    const mac = `02:00:00:0c:${(firstOfport + i).toString(16).padStart(2, '0')}:01`;
    await sb.ip.apply(new IpBatch().addVeth(hostIf, ifname, { peerNetns: netns, peerMac: mac }).setLink(hostIf, { up: true }));
    await ip.apply(new IpBatch().setLink(ifname, { up: true }));
    await sb.ip.txOffloadOff(hostIf);
    await ip.txOffloadOff(ifname);
    await sb.ovs.vsctl(['add-port', bridge, hostIf, '--', 'set', 'interface', hostIf, `ofport_request=${firstOfport + i}`, ...(tag ? ['--', 'set', 'port', hostIf, `tag=${tag}`] : [])]);
    ports.push({ ifname, ofport: firstOfport + i, mac });
  }
  return { netns, ip, ports };
}

/** A Transparent CNF: a Linux bridge between in0 and out0. */
export async function bridging(cnf: Cnf): Promise<Cnf> {
  await cnf.ip.apply(new IpBatch().addLink('br0', 'bridge').setLink('in0', { master: 'br0' }).setLink('out0', { master: 'br0' }).setLink('br0', { up: true }));
  return cnf;
}

/** A Routed CNF between in0 and out0, forwarding to the next hop Seine answers for. */
export async function routing(cnf: Cnf): Promise<Cnf> {
  await cnf.ip.sysctl({ 'net.ipv4.ip_forward': 1, 'net.ipv4.conf.all.rp_filter': 0, 'net.ipv4.conf.in0.rp_filter': 0, 'net.ipv4.conf.out0.rp_filter': 0 });
  await cnf.ip.apply(
    new IpBatch()
      .command('rule', 'add', 'iif', 'in0', 'lookup', '100')
      .command('rule', 'add', 'iif', 'out0', 'lookup', '101')
      .replaceRoute('default', { via: NEXT_HOP_IP, dev: 'out0', onlink: true, table: 100 })
      .replaceRoute('default', { via: NEXT_HOP_IP, dev: 'in0', onlink: true, table: 101 }),
  );
  return cnf;
}

/** A one-armed Routed CNF on eth1. */
export async function oneArmedRouting(cnf: Cnf): Promise<Cnf> {
  await cnf.ip.sysctl({ 'net.ipv4.ip_forward': 1, 'net.ipv4.conf.all.rp_filter': 0, 'net.ipv4.conf.eth1.rp_filter': 0, 'net.ipv4.conf.all.send_redirects': 0, 'net.ipv4.conf.eth1.send_redirects': 0 });
  await cnf.ip.apply(new IpBatch().command('rule', 'add', 'iif', 'eth1', 'lookup', '100').replaceRoute('default', { via: NEXT_HOP_IP, dev: 'eth1', onlink: true, table: 100 }));
  return cnf;
}

/** Packets an interface of the CNF received. */
export async function rx(cnf: Cnf, ifname: string): Promise<number> {
  const { stdout } = await run('ip', ['-s', '-j', 'link', 'show', ifname], { netns: cnf.netns });
  return Number((JSON.parse(stdout) as Array<{ stats64: { rx: { packets: number } } }>)[0]!.stats64.rx.packets);
}

/** Counts TCP packets to `port` seen by a CNF (bridge family for a bridging CNF, ip for a routing one). */
export async function watchPort(cnf: Cnf, family: 'bridge' | 'ip', port: number): Promise<void> {
  const hook = family === 'bridge' ? 'forward' : 'prerouting';
  await run('nft', ['-f', '-'], { netns: cnf.netns, input: `table ${family} seine_test { chain c { type filter hook ${hook} priority 0; tcp dport ${port} counter; }; }\n` });
}

export async function seen(cnf: Cnf, family: 'bridge' | 'ip'): Promise<number> {
  const { stdout } = await run('nft', ['-j', 'list', 'table', family, 'seine_test'], { netns: cnf.netns });
  const items = (JSON.parse(stdout) as { nftables: Array<{ rule?: { expr: Array<{ counter?: { packets: number } }> } }> }).nftables;
  return items.flatMap((i) => i.rule?.expr ?? []).reduce((n, e) => n + (e.counter?.packets ?? 0), 0);
}

/** The CNF as a local replica of a hop (one-armed when it has one port). */
export function replica(id: number, cnf: Cnf, usable = true): HopReplica {
  const [a, b] = [cnf.ports[0]!, cnf.ports[1] ?? cnf.ports[0]!];
  return { id, nodeIp: '192.168.0.1', usable, local: { ingressOfport: a.ofport, egressOfport: b.ofport, ingressMac: a.mac, egressMac: b.mac } };
}

/** One TCP exchange from `client` to `server`'s `port`: what the server received ('' when nothing came). */
export async function tcp(client: SandboxPod, server: SandboxPod, port: number): Promise<string> {
  const srv = run('timeout', ['10', 'nc', '-l', '-p', String(port)], { netns: server.netns }).then((r) => r.stdout.trim(), () => '');
  await eventually(`server listening on ${port}`, async () => (await run('ss', ['-Hltn', `sport = :${port}`], { netns: server.netns })).stdout.trim() !== '', 10_000);
  await succeeds('sh', ['-c', `echo hello | nc -N -w 5 ${server.addr} ${port}`], { netns: client.netns, timeoutMs: 15_000 });
  return srv;
}
