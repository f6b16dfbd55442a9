// The primary network's CNI endpoint under bad input: seine-cni run as a container runtime runs it
// (env + stdin, inside the node's namespace, against the node's real agent and Open vSwitch). Every case
// checks the CNI answer, then that the node holds exactly the ports, veths, addresses and flows of the
// attachments that succeeded: a refused or failed request leaves nothing behind.
// Cases run in order and share the node's attachments (the pool is 5 addresses).
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CommandError, run } from '../../src/host/exec.js';
import { createNetns, deleteNetns, netnsPath } from '../../src/host/netns.js';
import type { Lab } from '../../src/lab/lab.js';
import type { LabNode } from '../../src/lab/node.js';
import { CookieOwner, decodeCookie } from '../../src/ovs/openflow/cookie.js';
import { hostInterfaceName } from '../../src/podif/interface.js';
import { SEINE_CNI_BINARY } from '../../src/cni/plugin-binary.js';
import { eventually, startTestLab } from '../harness/lab.js';

/** Flows per pod (src/primary/pipeline/flows.ts podFlows): classifier, 2 spoof guard, ARP, L3, L2. */
const POD_FLOWS = 6;
/** /29: network, gateway and broadcast reserved, 5 pod addresses. */
const NODE_CIDR_MASK = 29;
const POOL_SIZE = 5;

interface Outcome {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout decoded, when it is JSON. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

/** A container stand-in: its own network namespace (in the lab's ledger, so lab.down removes it). */
interface Sandbox {
  containerId: string;
  netnsName: string;
  netns: string;
  podName: string;
  podUid: string;
}

/** A successful attachment: what the node must hold for it. */
interface Attachment {
  sandbox: Sandbox;
  ifname: string;
  port: string;
  ip: string;
  ofport: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  result: any;
}

interface NodeState {
  ports: string[];
  veths: string[];
  /** IPAM allocations as "ip containerId/ifname". */
  ips: string[];
  /** Pod flows (cookie kind 0, id = ofport) per ofport. */
  podFlows: Map<number, number>;
  /** Every other flow (base, peers). */
  otherFlows: number;
}

describe('seine-cni against a lab node: bad input and failures leave nothing behind', () => {
  let lab: Lab;
  let node: LabNode;
  /** The conflist's plugin config with name and cniVersion, as a runtime passes it on stdin. */
  let pluginConf: Record<string, unknown>;
  let base: NodeState;
  const attached: Attachment[] = [];
  let sandboxes = 0;

  beforeAll(async () => {
    lab = await startTestLab({ nodes: 1, nodeCidrMaskSize: NODE_CIDR_MASK });
    node = lab.nodes[0]!;
    const conflist = JSON.parse(readFileSync(join(node.dirs.cniConfDir, '10-seine.conflist'), 'utf8')) as { name: string; cniVersion: string; plugins: Array<Record<string, unknown>> };
    pluginConf = { ...conflist.plugins[0], name: conflist.name, cniVersion: conflist.cniVersion };
    await waitAgentReady();
    base = await nodeState();
  }, 120_000);

  afterAll(async () => {
    await lab?.down();
  }, 120_000);

  // ---- helpers -------------------------------------------------------------------------------

  /** Runs seine-cni inside the node namespace with exactly `env` (plus PATH/HOME) and `stdin`. */
  async function exec(env: Record<string, string | undefined>, stdin: string): Promise<Outcome> {
    const full: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME };
    for (const [k, v] of Object.entries(env)) if (v !== undefined) full[k] = v;
    let exitCode = 0;
    let stdout: string;
    let stderr: string;
    try {
      ({ stdout, stderr } = await run(SEINE_CNI_BINARY, [], { netns: node.netns, env: full, input: stdin, timeoutMs: 60_000 }));
    } catch (e) {
      if (!(e instanceof CommandError) || e.exitCode === null) throw e;
      ({ exitCode, stdout, stderr } = e);
    }
    let json: unknown;
    try {
      json = JSON.parse(stdout);
    } catch {
      json = undefined;
    }
    return { exitCode, stdout, stderr, json };
  }

  function cniArgs(sb: Sandbox): string {
    return `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${sb.podName};K8S_POD_INFRA_CONTAINER_ID=${sb.containerId};K8S_POD_UID=${sb.podUid}`;
  }

  /** The env a runtime sets for one attachment. */
  function envFor(command: string, sb: Sandbox, ifname = 'eth0'): Record<string, string | undefined> {
    return { CNI_COMMAND: command, CNI_CONTAINERID: sb.containerId, CNI_NETNS: sb.netns, CNI_IFNAME: ifname, CNI_ARGS: cniArgs(sb), CNI_PATH: node.dirs.cniBinDir };
  }

  function stdinFor(extra: Record<string, unknown> = {}): string {
    return JSON.stringify({ ...pluginConf, ...extra });
  }

  async function newSandbox(): Promise<Sandbox> {
    const n = ++sandboxes;
    const netnsName = `${lab.plan.name}-c${n}`;
    lab.ledger.netns(netnsName);
    await createNetns(netnsName);
    return { containerId: `${randomBytes(16).toString('hex')}`, netnsName, netns: netnsPath(netnsName), podName: `cni-${n}`, podUid: `00000000-0000-4000-8000-${n.toString().padStart(12, '0')}` };
  }

  async function removeSandbox(sb: Sandbox): Promise<void> {
    await deleteNetns(sb.netnsName);
    lab.ledger.forgetNetns(sb.netnsName);
  }

  /** Links inside a network namespace, through iproute2 (sysfs under nsenter is the root namespace's). */
  async function links(netns: string, type?: string): Promise<Array<{ ifname: string; address?: string }>> {
    const { stdout } = await run('ip', ['-json', 'link', 'show', ...(type ? ['type', type] : [])], { netns });
    return JSON.parse(stdout || '[]') as Array<{ ifname: string; address?: string }>;
  }

  async function nodeState(): Promise<NodeState> {
    const ports = (await node.ovs.vsctl(['list-ports', 'br-int'])).split('\n').filter(Boolean).sort();
    const veths = (await links(node.netns, 'veth')).map((l) => l.ifname).sort();
    const ipamFile = join(node.dirs.stateDir, 'ipam-ipv4.json');
    const allocations = existsSync(ipamFile) ? (JSON.parse(readFileSync(ipamFile, 'utf8')) as { allocations: Array<{ ip: string; containerId: string; ifname: string }> }).allocations : [];
    const ips = allocations.map((a) => `${a.ip} ${a.containerId}/${a.ifname}`).sort();
    const { stdout } = await run('ovs-ofctl', ['-O', 'OpenFlow15', 'dump-flows', node.ovs.bridgeMgmt('br-int')]);
    const podFlows = new Map<number, number>();
    let otherFlows = 0;
    for (const m of stdout.matchAll(/cookie=(0x[0-9a-f]+)/g)) {
      const { owner, object } = decodeCookie(BigInt(m[1]!));
      const kind = Number(object >> 32n);
      const id = Number(object & 0xffffffffn);
      // The pipeline's own pod flows; other features' cookies number their objects their own way.
      if (owner === CookieOwner.primary && kind === 0 && id !== 0) podFlows.set(id, (podFlows.get(id) ?? 0) + 1);
      else otherFlows++;
    }
    return { ports, veths, ips, podFlows, otherFlows };
  }

  /** The node holds the base state plus exactly the successful attachments: ports, veths, IPs, flows. */
  async function expectNodeHoldsExactly(list: readonly Attachment[] = attached): Promise<void> {
    const now = await nodeState();
    expect(now.ports).toEqual([...base.ports, ...list.map((a) => a.port)].sort());
    expect(now.veths).toEqual([...base.veths, ...list.map((a) => a.port)].sort());
    expect(now.ips).toEqual(list.map((a) => `${a.ip} ${a.sandbox.containerId}/${a.ifname}`).sort());
    expect([...now.podFlows.entries()].sort((x, y) => x[0] - y[0])).toEqual(list.map((a) => [a.ofport, POD_FLOWS]).sort((x, y) => (x[0] as number) - (y[0] as number)));
    expect(now.otherFlows).toBe(base.otherFlows);
  }

  /** No interface but lo in a sandbox that a failed ADD was aimed at. */
  async function expectSandboxEmpty(sb: Sandbox): Promise<void> {
    expect((await links(sb.netns)).map((l) => l.ifname)).toEqual(['lo']);
  }

  function expectError(out: Outcome, code: number, msg?: RegExp): void {
    expect({ exitCode: out.exitCode, code: out.json?.code as unknown }).toEqual({ exitCode: 1, code });
    expect(typeof out.json.msg).toBe('string');
    if (msg) expect(`${out.json.msg as string}: ${(out.json.details as string | undefined) ?? ''}`).toMatch(msg);
  }

  async function ofportOf(port: string): Promise<number> {
    return Number((await node.ovs.vsctl(['get', 'Interface', port, 'ofport'])).trim());
  }

  async function add(sb: Sandbox, ifname = 'eth0'): Promise<Outcome> {
    return exec(envFor('ADD', sb, ifname), stdinFor());
  }

  /** ADD that must succeed; records the attachment. */
  async function attach(sb: Sandbox, ifname = 'eth0'): Promise<Attachment> {
    const out = await add(sb, ifname);
    expect(out.exitCode).toBe(0);
    const r = out.json;
    const port = r.interfaces[0].name as string;
    const ip = (r.ips[0].address as string).split('/')[0]!;
    const ofport = await ofportOf(port);
    const a: Attachment = { sandbox: sb, ifname, port, ip, ofport, result: r };
    attached.push(a);
    return a;
  }

  async function del(sb: Sandbox, ifname = 'eth0'): Promise<Outcome> {
    return exec(envFor('DEL', sb, ifname), stdinFor());
  }

  async function detach(a: Attachment): Promise<void> {
    const out = await del(a.sandbox, a.ifname);
    expect(out).toMatchObject({ exitCode: 0 });
    attached.splice(attached.indexOf(a), 1);
  }

  async function status(): Promise<Outcome> {
    return exec({ CNI_COMMAND: 'STATUS', CNI_PATH: node.dirs.cniBinDir }, stdinFor({ cniVersion: '1.1.0' }));
  }

  async function waitAgentReady(): Promise<void> {
    await eventually('the seine agent answers STATUS', async () => ((await status()).exitCode === 0 ? true : undefined), 60_000);
  }

  // ---- cases ---------------------------------------------------------------------------------

  it('answers VERSION itself: 0.3.0 to 1.1.0', async () => {
    const out = await exec({ CNI_COMMAND: 'VERSION' }, '');
    expect(out.exitCode).toBe(0);
    expect(out.json).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });

  it('STATUS succeeds once the agent is ready', async () => {
    const out = await status();
    expect(out).toMatchObject({ exitCode: 0, stdout: '' });
  });

  it('ADD attaches a pod; CHECK of it passes', async () => {
    const sb = await newSandbox();
    const a = await attach(sb);
    const podCidr = (await lab.core.readNode({ name: node.plan.name })).spec!.podCIDR!;
    expect(podCidr.endsWith(`/${NODE_CIDR_MASK}`)).toBe(true);
    expect(a.result).toMatchObject({
      cniVersion: pluginConf.cniVersion,
      interfaces: [{ name: a.port }, { name: 'eth0', sandbox: sb.netns }],
      ips: [{ address: `${a.ip}/${NODE_CIDR_MASK}`, interface: 1 }],
    });
    const eth0 = (await links(sb.netns)).find((l) => l.ifname === 'eth0');
    expect(eth0?.address).toBe(a.result.interfaces[1].mac);
    await expectNodeHoldsExactly();

    const check = await exec(envFor('CHECK', sb), stdinFor({ prevResult: a.result }));
    expect(check).toMatchObject({ exitCode: 0, stdout: '' });
  });

  it('ADD again for the same container and ifname returns the same result: one port, one IP', async () => {
    const a = attached[0]!;
    for (let i = 0; i < 2; i++) {
      const again = await add(a.sandbox);
      expect(again.exitCode).toBe(0);
      expect(again.json).toEqual(a.result);
    }
    await expectNodeHoldsExactly();
  });

  it('malformed stdin: not JSON is code 6, JSON that is not a valid config is code 7', async () => {
    const sb = await newSandbox();
    const env = envFor('ADD', sb);
    for (const stdin of ['', 'not json', '{"cniVersion": "1.0.0", ', '\u0000\u0001']) {
      expectError(await exec(env, stdin), 6, /decode/);
    }
    const { name: _name, ...withoutName } = pluginConf;
    const invalid: unknown[] = [
      null,
      [],
      42,
      'a string',
      withoutName,
      { ...pluginConf, type: undefined },
      { ...pluginConf, name: 'not a valid name!' },
      { ...pluginConf, cniVersion: 7 },
      { ...pluginConf, cniSocket: 'relative/cni.sock' },
      { ...pluginConf, cniSocket: 42 },
      { ...pluginConf, cniTimeoutSeconds: -1 },
      { ...pluginConf, prevResult: { cniVersion: '1.0.0', ips: [{ address: 'not-an-ip' }] } },
    ];
    for (const conf of invalid) {
      const out = await exec(env, JSON.stringify(conf));
      expectError(out, 7);
    }
    // A version Seine does not speak is code 1.
    expectError(await exec(env, stdinFor({ cniVersion: '0.2.0' })), 1);
    expectError(await exec(envFor('CHECK', sb), stdinFor({ cniVersion: '0.3.1' })), 1);
    await expectSandboxEmpty(sb);
    await expectNodeHoldsExactly();
    await removeSandbox(sb);
  });

  it('missing or invalid CNI_* env is code 4', async () => {
    const sb = await newSandbox();
    const good = envFor('ADD', sb);
    const cases: Array<[string, Record<string, string | undefined>]> = [
      ['no CNI_COMMAND', { ...good, CNI_COMMAND: undefined }],
      ['unknown CNI_COMMAND', { ...good, CNI_COMMAND: 'UPDATE' }],
      ['no CNI_CONTAINERID', { ...good, CNI_CONTAINERID: undefined }],
      ['no CNI_NETNS', { ...good, CNI_NETNS: undefined }],
      ['no CNI_IFNAME', { ...good, CNI_IFNAME: undefined }],
      ['no CNI_PATH', { ...good, CNI_PATH: undefined }],
      ['bad container id', { ...good, CNI_CONTAINERID: 'bad/id' }],
      ['bad ifname', { ...good, CNI_IFNAME: 'much-too-long-ifname' }],
      ['unknown CNI_ARGS key', { ...good, CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=x;FOO=bar' }],
      ['ifname of 8 characters but 16 bytes', { ...good, CNI_IFNAME: 'éééééééé' }],
      ['netns with a control character', { ...good, CNI_NETNS: `${sb.netns}\n` }],
      ['no CNI_CONTAINERID on DEL', { ...envFor('DEL', sb), CNI_CONTAINERID: undefined }],
      ['no CNI_NETNS on CHECK', { ...envFor('CHECK', sb), CNI_NETNS: undefined }],
    ];
    for (const [what, env] of cases) {
      const out = await exec(env, stdinFor());
      try {
        expectError(out, 4);
      } catch (e) {
        throw new Error(`${what}: ${(e as Error).message}`, { cause: e });
      }
    }
    await expectSandboxEmpty(sb);
    await expectNodeHoldsExactly();
    await removeSandbox(sb);
  });

  it('ADD into a network namespace that does not exist is code 3', async () => {
    const sb = await newSandbox();
    await removeSandbox(sb);
    const out = await add(sb);
    expectError(out, 3, /network namespace not found/);
    await expectNodeHoldsExactly();
  });

  it('ADD into a path that is not a network namespace fails and rolls back (address, veth, port)', async () => {
    const sb = await newSandbox();
    const notNetns = join(lab.stateDir, 'not-a-netns');
    writeFileSync(notNetns, '');
    try {
      const out = await exec({ ...envFor('ADD', sb), CNI_NETNS: notNetns }, stdinFor());
      expect(out.exitCode).toBe(1);
      expect(out.json.code).toBeGreaterThanOrEqual(100);
      await expectNodeHoldsExactly();
    } finally {
      rmSync(notNetns, { force: true });
      await removeSandbox(sb);
    }
  });

  it('ADD with the same container id and ifname but another netns is refused; the first attachment stays', async () => {
    const a = attached[0]!;
    const other = await newSandbox();
    const out = await exec({ ...envFor('ADD', a.sandbox), CNI_NETNS: other.netns }, stdinFor());
    expectError(out, 7, /already/);
    await expectSandboxEmpty(other);
    await expectNodeHoldsExactly();
    const check = await exec(envFor('CHECK', a.sandbox), stdinFor({ prevResult: a.result }));
    expect(check.exitCode).toBe(0);
    await removeSandbox(other);
  });

  it('ADD again after the sandbox netns was re-created at the same path sets the pod up again', async () => {
    const sb = await newSandbox();
    const first = await attach(sb);
    // The sandbox's namespace goes away without a DEL: an ADD into the missing namespace is code 3 (the
    // attachment stays for its DEL)...
    await deleteNetns(sb.netnsName);
    expectError(await add(sb), 3, /network namespace not found/);
    // ...then the runtime re-creates the namespace under the same path.
    await createNetns(sb.netnsName);
    const out = await add(sb);
    expect(out.exitCode).toBe(0);
    const r = out.json;
    const eth0 = (await links(sb.netns)).find((l) => l.ifname === 'eth0');
    expect(eth0?.address).toBe(r.interfaces[1].mac);
    // The old port and its flows were replaced. The address is the same one, or a new one when the agent's
    // reconciler released the vanished sandbox (no pod claims it) before this ADD came: either way the node
    // holds exactly one address for it (checked below).
    expect(r.ips).toHaveLength(1);
    attached.splice(attached.indexOf(first), 1);
    const port = r.interfaces[0].name as string;
    attached.push({ ...first, port, ip: (r.ips[0].address as string).split('/')[0]!, ofport: await ofportOf(port), result: r });
    expect(await exec(envFor('CHECK', sb), stdinFor({ prevResult: r }))).toMatchObject({ exitCode: 0 });
    await expectNodeHoldsExactly();
  });

  it('a second interface of the same container is its own attachment', async () => {
    const a = attached[0]!;
    const net1 = await attach(a.sandbox, 'net1');
    expect(net1.ip).not.toBe(a.ip);
    expect(net1.port).not.toBe(a.port);
    expect((await links(a.sandbox.netns)).map((l) => l.ifname).sort()).toEqual(['eth0', 'lo', 'net1']);
    await expectNodeHoldsExactly();
    // Each has its default route; the pod keeps using the first one's.
    for (const x of [a, net1]) expect(await exec(envFor('CHECK', x.sandbox, x.ifname), stdinFor({ prevResult: x.result }))).toMatchObject({ exitCode: 0 });
    await detach(net1);
    expect((await links(a.sandbox.netns)).map((l) => l.ifname).sort()).toEqual(['eth0', 'lo']);
    expect(await exec(envFor('CHECK', a.sandbox), stdinFor({ prevResult: a.result }))).toMatchObject({ exitCode: 0 });
    await expectNodeHoldsExactly();
  });

  it('a half-made attachment (veth left by a crashed ADD): ADD fails cleanly, DEL removes the rest, ADD then works', async () => {
    const sb = await newSandbox();
    const hostIf = hostInterfaceName('default', sb.podName, sb.containerId, 'eth0');
    await run('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', sb.netns], { netns: node.netns });
    const out = await add(sb);
    expectError(out, 112, /exists/);
    // Nothing of this ADD: no address, port or flow; only the leftover, which is not this ADD's to remove.
    const now = await nodeState();
    expect(now.veths).toEqual([...base.veths, ...attached.map((a) => a.port), hostIf].sort());
    expect(now.ips).toEqual(attached.map((a) => `${a.ip} ${a.sandbox.containerId}/${a.ifname}`).sort());
    // The runtime's DEL after the failed ADD removes the leftover (found by its name).
    expect(await del(sb)).toMatchObject({ exitCode: 0 });
    await expectSandboxEmpty(sb);
    await expectNodeHoldsExactly();
    await attach(sb);
    await expectNodeHoldsExactly();
  });

  it('GC removes the attachments that are not valid, and nothing on bad input', async () => {
    const gc = (valid: unknown, cniVersion = '1.1.0'): Promise<Outcome> =>
      exec({ CNI_COMMAND: 'GC', CNI_PATH: node.dirs.cniBinDir }, stdinFor({ cniVersion, 'cni.dev/valid-attachments': valid }));
    const all = attached.map((a) => ({ containerID: a.sandbox.containerId, ifname: a.ifname }));
    expectError(await gc(all, '1.0.0'), 1);
    expectError(await gc([{ containerID: attached[0]!.sandbox.containerId }]), 7);
    expectError(await gc('everything'), 7);
    await expectNodeHoldsExactly();
    expect(await gc(all)).toMatchObject({ exitCode: 0 });
    await expectNodeHoldsExactly();
    // The last attachment is stale: GC removes its port, veth, flows and address.
    const stale = attached.at(-1)!;
    expect(await gc(all.slice(0, -1))).toMatchObject({ exitCode: 0 });
    attached.pop();
    await expectNodeHoldsExactly();
    await expectSandboxEmpty(stale.sandbox);
    expect(await del(stale.sandbox)).toMatchObject({ exitCode: 0 });
    await removeSandbox(stale.sandbox);
  });

  it('DEL of an unknown container succeeds and changes nothing', async () => {
    const sb = await newSandbox();
    expect(await del(sb)).toMatchObject({ exitCode: 0 });
    expect(await exec({ ...envFor('DEL', sb), CNI_NETNS: undefined, CNI_ARGS: undefined }, stdinFor())).toMatchObject({ exitCode: 0 });
    await removeSandbox(sb);
    expect(await del(sb)).toMatchObject({ exitCode: 0 });
    // Another ifname of an attached container is unknown too.
    expect(await del(attached[0]!.sandbox, 'net1')).toMatchObject({ exitCode: 0 });
    await expectNodeHoldsExactly();
  });

  it('CHECK of an unknown attachment fails', async () => {
    const sb = await newSandbox();
    expectError(await exec(envFor('CHECK', sb), stdinFor()), 3, /unknown attachment/);
    expectError(await exec(envFor('CHECK', attached[0]!.sandbox, 'net1'), stdinFor()), 3);
    await expectNodeHoldsExactly();
    await removeSandbox(sb);
  });

  it('an exhausted pool is code 110 with a clear message; nothing is left of the refused ADD', async () => {
    const fill: Sandbox[] = [];
    while (attached.length < POOL_SIZE) {
      const sb = await newSandbox();
      fill.push(sb);
      await attach(sb);
    }
    expect(new Set(attached.map((a) => a.ip)).size).toBe(POOL_SIZE);
    await expectNodeHoldsExactly();

    const extra = await newSandbox();
    const out = await add(extra);
    expectError(out, 110, /no free pod address.*all 5 usable addresses are allocated/);
    await expectSandboxEmpty(extra);
    await expectNodeHoldsExactly();
    // A retry is refused the same way, and still leaves nothing.
    expectError(await add(extra), 110);
    await expectNodeHoldsExactly();

    // Freeing one address makes room again.
    await detach(attached.at(-1)!);
    await removeSandbox(fill.pop()!);
    await expectNodeHoldsExactly();
    const a = await attach(extra);
    expect(a.result.ips[0].address).toMatch(new RegExp(`/${NODE_CIDR_MASK}$`));
    await expectNodeHoldsExactly();
  });

  it('agent unreachable: ADD is code 11, DEL and STATUS answer without it; a restart keeps or reclaims', async () => {
    const agent = lab.agents.get(node.plan.name)!;
    const gone = attached.at(-1)!;
    const recreated = attached.at(-2)!;
    await agent.stop();
    try {
      const sb = await newSandbox();
      expectError(await add(sb), 11, /not reachable/);
      await expectSandboxEmpty(sb);
      expect(await del(sb)).toMatchObject({ exitCode: 0 });
      expectError(await status(), 50, /not reachable/);
      // DEL of a live attachment while the agent is away: the runtime then removes the netns.
      expect(await del(gone.sandbox)).toMatchObject({ exitCode: 0 });
      await removeSandbox(gone.sandbox);
      // The same, but the runtime retries the sandbox in a new netns under the same path (as the lab's kubelet does).
      expect(await del(recreated.sandbox)).toMatchObject({ exitCode: 0 });
      await deleteNetns(recreated.sandbox.netnsName);
      await createNetns(recreated.sandbox.netnsName);
      await removeSandbox(sb);
      // VERSION needs no agent.
      expect((await exec({ CNI_COMMAND: 'VERSION' }, '')).exitCode).toBe(0);
    } finally {
      agent.start();
    }
    await waitAgentReady();
    // The agent found the attachment whose netns is gone and removed it; the others are intact.
    attached.splice(attached.indexOf(gone), 1);
    // The retried ADD in the re-created netns gets a working interface.
    attached.splice(attached.indexOf(recreated), 1);
    await attach(recreated.sandbox);
    expect((await links(recreated.sandbox.netns)).map((l) => l.ifname).sort()).toEqual(['eth0', 'lo']);
    // The reconciler releases the vanished sandbox within seconds of the agent's start (once it knows the pods).
    await eventually('the sandbox gone during the outage released', async () => {
      await expectNodeHoldsExactly();
      return true;
    }, 30_000);
    for (const a of attached) {
      const check = await exec(envFor('CHECK', a.sandbox), stdinFor({ prevResult: a.result }));
      expect(check).toMatchObject({ exitCode: 0 });
      const again = await add(a.sandbox);
      expect(again.json).toEqual(a.result);
    }
    await expectNodeHoldsExactly();
  }, 90_000);

  it('concurrent ADDs beyond the free addresses: as many succeed as there are free, the rest are 110 and leave nothing', async () => {
    const free = POOL_SIZE - attached.length;
    expect(free).toBeGreaterThan(0);
    const sbs = await Promise.all(Array.from({ length: free + 3 }, () => newSandbox()));
    const outs = await Promise.all(sbs.map((sb) => add(sb)));
    const ok = sbs.filter((_, i) => outs[i]!.exitCode === 0);
    const refused = sbs.filter((_, i) => outs[i]!.exitCode !== 0);
    expect(ok.length).toBe(free);
    for (const [i, out] of outs.entries()) {
      if (out.exitCode === 0) continue;
      expectError(out, 110, /no free pod address/);
      await expectSandboxEmpty(sbs[i]!);
    }
    for (const sb of ok) {
      const r = outs[sbs.indexOf(sb)]!.json;
      const port = r.interfaces[0].name as string;
      attached.push({ sandbox: sb, ifname: 'eth0', port, ip: (r.ips[0].address as string).split('/')[0]!, ofport: await ofportOf(port), result: r });
    }
    expect(new Set(attached.map((a) => a.ip)).size).toBe(POOL_SIZE);
    await expectNodeHoldsExactly();
    // What a runtime does after a failed ADD: DEL, then remove the sandbox.
    for (const sb of refused) {
      expect(await del(sb)).toMatchObject({ exitCode: 0 });
      await removeSandbox(sb);
    }
    await expectNodeHoldsExactly();
  });

  it('agent killed in the middle of ADDs: after its restart and the runtime DELs, exactly the ADDs that succeeded remain', async () => {
    // Room for four ADDs.
    while (attached.length > 1) {
      const a = attached.at(-1)!;
      await detach(a);
      await removeSandbox(a.sandbox);
    }
    const agent = lab.agents.get(node.plan.name)!;
    const sbs = await Promise.all(Array.from({ length: 4 }, () => newSandbox()));
    // Staggered, so that when the first has its answer the others are at different stages: kill the agent then.
    const calls = sbs.map((sb, i) => new Promise((r) => setTimeout(r, i * 40)).then(() => add(sb)));
    await Promise.race(calls);
    agent.crash();
    const outs = await Promise.all(calls);
    await waitAgentReady();
    for (const [i, sb] of sbs.entries()) {
      const out = outs[i]!;
      if (out.exitCode === 0) {
        const port = out.json.interfaces[0].name as string;
        attached.push({ sandbox: sb, ifname: 'eth0', port, ip: (out.json.ips[0].address as string).split('/')[0]!, ofport: await ofportOf(port), result: out.json });
      } else {
        expect([11, 999, 112, 113]).toContain(out.json?.code);
        expect(await del(sb)).toMatchObject({ exitCode: 0 });
        await expectSandboxEmpty(sb);
        await removeSandbox(sb);
      }
    }
    console.log(`crash during ADDs: ${outs.map((o) => (o.exitCode === 0 ? 'ok' : `code ${o.json?.code}`)).join(', ')}`);
    await expectNodeHoldsExactly();
    for (const a of attached) expect(await exec(envFor('CHECK', a.sandbox), stdinFor({ prevResult: a.result }))).toMatchObject({ exitCode: 0 });
  }, 90_000);

  it('DEL removes every attachment: the node is back to its base state', async () => {
    for (const a of [...attached]) {
      await detach(a);
      await expectSandboxEmpty(a.sandbox);
      // DEL is idempotent.
      expect(await del(a.sandbox)).toMatchObject({ exitCode: 0 });
      await removeSandbox(a.sandbox);
    }
    expect(attached).toEqual([]);
    await expectNodeHoldsExactly();
  });
});
