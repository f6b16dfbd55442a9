import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { listNetns } from '../../src/host/netns.js';
import { isAlive, processRef, type ProcessRef } from '../../src/host/ledger.js';
import type { LabStatus } from '../../src/lab/lab.js';
import { docBlock, runAsUser, userShellDirs } from '../harness/doc-blocks.js';
import { eventually } from '../harness/lab.js';
import { TEST_LEDGER_ROOT } from '../harness/sandbox.js';

const execFileP = promisify(execFile);
const SEINE = join(process.cwd(), 'bin', 'seine');
const name = `c${randomBytes(3).toString('hex')}`;
const common = ['--name', name, '--state-root', TEST_LEDGER_ROOT];

/** `seine lab VERB` with this lab's options, then `rest` (which may hold `--` and a command). */
async function seine(args: string[], rest: string[] = []): Promise<string> {
  const { stdout } = await execFileP(SEINE, [...args, ...common, ...rest], { timeout: 120_000 });
  return stdout;
}

let kubeconfig = '';
const kubeCache = join(TEST_LEDGER_ROOT, `${name}-kcache`);
async function kubectl(args: string[]): Promise<string> {
  const { stdout } = await execFileP('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', kubeCache, ...args], { timeout: 60_000 });
  return stdout;
}

/** docs/lab.md's "Using it": the session a user types, run as written against this lab (by its name). */
const usingIt = docBlock(join(process.cwd(), 'docs', 'lab.md'), '## Using it').trim().split('\n');

// The CLI runs the build (npm test builds before jest).
describe('seine lab CLI', () => {
  let status: LabStatus;
  afterAll(async () => {
    await execFileP(SEINE, ['lab', 'down', ...common]).catch(() => undefined);
    await execFileP('rm', ['-rf', kubeCache, ...userShellDirs(name)]);
  }, 120_000);

  it("docs/lab.md's \"Using it\" runs as written up to its last line: 3 Ready nodes with pod CIDRs, a ping across nodes, a node's routes, the external host, the status", async () => {
    expect(usingIt.at(-1)).toMatch(/^seine lab down\b/);
    const out = await runAsUser(usingIt.slice(0, -1), name);
    expect(out).toMatch(/is up with 3 nodes/);
    expect(out).toMatch(new RegExp(`${name}-node3\\s+(Not)?Ready`));
    expect(out).toMatch(/3 packets transmitted, [23] received/);
    expect(out).toMatch(/^10\.244\.[12]\.0\/24 /m);
    expect(out).toMatch(/inet 172\.28\.0\.254\/24/);
    expect(out).toMatch(/NODE\s+NETNS\s+IP/);
    kubeconfig = (await seine(['lab', 'kubeconfig'])).trim();
    status = JSON.parse(await seine(['lab', 'status', '--json'])) as LabStatus;
    expect(status.nodes).toHaveLength(3);
    const cols = await eventually('3 Ready nodes', async () => {
      const o = await kubectl(['get', 'nodes', '-o', 'custom-columns=NAME:.metadata.name,CIDR:.spec.podCIDR,READY:.status.conditions[0].status', '--no-headers']);
      return (o.match(/True/g) ?? []).length === 3 ? o : undefined;
    });
    expect(cols).toMatch(new RegExp(`${name}-node1\\s+10\\.244\\.0\\.0/24\\s+True`));
    expect(cols).toMatch(new RegExp(`${name}-node3\\s+10\\.244\\.2\\.0/24\\s+True`));
    expect(await kubectl(['get', 'nodes', '-o', 'wide'])).toMatch(/INTERNAL-IP[\s\S]*172\.28\.0\.11/);
  });

  it('kubectl apply gives Running pods with IPs; lab exec pings one from the other', async () => {
    await kubectl(['apply', '-f', 'manifests/examples/lab-pods.yaml']);
    await kubectl(['wait', '--for=condition=Ready', 'pod/server', 'pod/client', '--timeout=60s']);
    const ip = (await kubectl(['get', 'pod', 'server', '-o', 'jsonpath={.status.podIP}'])).trim();
    expect(ip).toMatch(/^10\.244\./);
    // Across nodes, the first packet to a new tunnel peer may be lost while OVS resolves the peer's ARP.
    const ping = await seine(['lab', 'exec'], ['default/client', '--', 'ping', '-c', '3', '-i', '0.3', '-W', '2', ip]);
    expect(ping).toMatch(/ [23] received/);
    const iperf = await seine(['lab', 'exec'], ['default/client', '--', 'iperf3', '-c', ip, '-t', '1']);
    expect(iperf).toMatch(/receiver/);
    // (With Seine's userspace datapath the node IP sits on br-phy, the uplink's bridge.)
    expect(await seine(['lab', 'exec', '--node', 'node1'], ['--', 'ip', '-br', 'addr'])).toContain('172.28.0.11/24');
    expect(await seine(['lab', 'exec', '--external'], ['--', 'ip', '-br', 'addr', 'show', 'eth0'])).toContain(status.externalIp);
  });

  it('annotate, label and delete work; status lists pod processes', async () => {
    await kubectl(['annotate', 'pod', 'client', 'seine.dev/note=hello']);
    await kubectl(['label', 'pod', 'client', 'tier=web']);
    expect(await kubectl(['get', 'pods', '-l', 'tier=web', '-o', 'name'])).toBe('pod/client\n');
    expect(await kubectl(['get', 'pod', 'client', '-o', 'jsonpath={.metadata.annotations.seine\\.dev/note}'])).toBe('hello');
    const st = await eventually('status with pods', async () => {
      const s = JSON.parse(await seine(['lab', 'status', '--json'])) as LabStatus;
      return s.nodes.flatMap((n) => n.pods).length === 2 ? s : undefined;
    });
    const server = st.nodes.flatMap((n) => n.pods).find((p) => p.name === 'server')!;
    expect(server.pids).toHaveLength(1);
    await kubectl(['delete', 'pod', 'server', '--timeout=30s']);
    expect(existsSync(`/var/run/netns/${server.netns}`)).toBe(false);
    expect(await kubectl(['get', 'pods', '-o', 'name'])).toBe('pod/client\n');
    expect(await seine(['lab', 'status'])).toMatch(/NODE\s+NETNS\s+IP/);
  });

  it('down leaves no namespace, process or file behind', async () => {
    const pids: ProcessRef[] = [];
    const st = JSON.parse(await seine(['lab', 'status', '--json'])) as LabStatus;
    for (const n of st.nodes) {
      for (const pid of [n.ovs.ovsdbServer, n.ovs.ovsVswitchd, ...n.pods.flatMap((p) => p.pids)]) {
        if (pid) pids.push(processRef(pid, 'lab process'));
      }
    }
    const supervisor = processRef(st.supervisorPid, 'supervisor');
    // The doc's last line.
    await runAsUser(usingIt.slice(-1), name);
    expect(listNetns().filter((n) => n.startsWith(`${name}-`))).toEqual([]);
    for (const p of [...pids, supervisor]) expect(isAlive(p)).toBe(false);
    expect(readdirSync(TEST_LEDGER_ROOT).filter((f) => f.startsWith(name))).toEqual([`${name}-bin`, `${name}-kcache`].filter((f) => existsSync(join(TEST_LEDGER_ROOT, f))));
  });
});
