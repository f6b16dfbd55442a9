// IpRoute's steps done by seine-exec itself (rtnetlink, an ethtool ioctl, /proc/sys writes from a thread in each
// namespace) leave the namespaces exactly as the iproute2 script does, fail with the same exit code and words,
// and fall back to the script for a line the helper does not read. Each case runs twice, in namespaces of its
// own: once spawned as a script, once through the helper; the two are compared field by field.
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { CommandError, run, useCommandRunner, type IpStepsRequest, type RunOptions } from '../../src/host/exec.js';
import { ExecHelper, type HelperReply } from '../../src/host/exec-helper.js';
import { IpBatch, IpRoute, STEP_EXIT_BASE } from '../../src/host/ip.js';
import { setUpPodInterface } from '../../src/podif/interface.js';
import { setUpSecondaryInterface, type SecondaryInterfaceSpec } from '../../src/secondary/datapath/pod-interface.js';
import { eventually } from '../../src/util/wait.js';
import { NetnsTestEnv, removeDir, tempDir } from '../cni/helpers.js';

/** The helper, counting what it was asked: native steps (and which it declined) and commands. */
class CountingHelper extends ExecHelper {
  readonly native: HelperReply[] = [];
  commands = 0;
  override async ipSteps(req: IpStepsRequest): Promise<HelperReply> {
    const r = await super.ipSteps(req);
    this.native.push(r);
    return r;
  }
  override execute(argv: readonly string[], opts: RunOptions): Promise<HelperReply> {
    this.commands++;
    return super.execute(argv, opts);
  }
}

interface Side {
  env: NetnsTestEnv;
  host: IpRoute;
  pod: string;
}

async function json(netns: string, args: string[]): Promise<unknown[]> {
  const { stdout } = await run('ip', ['-json', ...args], { netns });
  return stdout.trim() ? (JSON.parse(stdout) as unknown[]) : [];
}

/**
 * What a namespace holds of links, addresses, routes, offloads and the devices' sysctls, once the kernel has
 * settled what it does by itself later (carrier and operstate, IPv6 duplicate address detection and the
 * routes of link-local addresses): two readings a second apart agree, with nothing tentative or unknown.
 * `hostSide`: the host ends' MACs are random, so they are not compared.
 */
async function snapshot(netns: string, hostSide: boolean): Promise<unknown> {
  let last = '';
  return eventually(`namespace ${netns} settled`, async () => {
    const now = JSON.stringify(await reading(netns, hostSide));
    const settled = now === last && !/"tentative"|"operstate":"UNKNOWN"/.test(now);
    last = now;
    return settled ? (JSON.parse(now) as unknown) : undefined;
  }, 30_000, 1000);
}

async function reading(netns: string, hostSide: boolean): Promise<unknown> {
  const links = (await json(netns, ['-details', 'link', 'show'])) as Array<Record<string, unknown>>;
  const out: Record<string, unknown> = {};
  for (const l of links) {
    const name = String(l.ifname);
    const info = l.linkinfo as { info_kind?: string } | undefined;
    const features = name === 'lo' ? '' : (await run('ethtool', ['-k', name], { netns })).stdout.split('\n').filter((x) => /^\s*tx-checksum|^tx-checksumming|segmentation/.test(x)).join('\n');
    const sysctls = await run('sh', ['-c', `cat /proc/sys/net/ipv4/conf/${name}/arp_ignore /proc/sys/net/ipv4/conf/${name}/rp_filter /proc/sys/net/ipv6/conf/${name}/disable_ipv6 2>/dev/null || true`], { netns });
    out[name] = {
      flags: l.flags,
      mtu: l.mtu,
      // Loopback's is always UNKNOWN.
      operstate: name === 'lo' ? undefined : l.operstate,
      address: name === 'lo' || hostSide ? undefined : l.address,
      kind: info?.info_kind,
      addrGenMode: l.inet6_addr_gen_mode,
      features,
      sysctls: sysctls.stdout.trim().split('\n'),
    };
  }
  const addrs = (await json(netns, ['addr', 'show'])) as Array<{ ifname: string; addr_info: Array<Record<string, unknown>> }>;
  for (const a of addrs) {
    (out[a.ifname] as Record<string, unknown>).addrs = a.addr_info.map(({ valid_life_time: _v, preferred_life_time: _p, ...rest }) => rest);
  }
  const routes: unknown[] = [];
  for (const fam of ['-4', '-6']) {
    for (const r of (await json(netns, [fam, 'route', 'show', 'table', 'all'])) as Array<Record<string, unknown>>) {
      const { expires: _e, ...rest } = r;
      routes.push(rest);
    }
  }
  out.routes = routes;
  return out;
}

describe('ip steps done natively by seine-exec', () => {
  let dir: string;
  let bin: string;
  let helper: CountingHelper;
  const envs: NetnsTestEnv[] = [];

  beforeAll(() => {
    dir = tempDir('seine-exec-ip-');
    bin = join(dir, 'seine-exec');
    execFileSync('bash', [resolve('scripts/build-go.sh'), bin, 'seine-exec'], { stdio: ['ignore', 'ignore', 'inherit'] });
  });
  beforeEach(() => {
    helper = new CountingHelper(bin);
  });
  afterEach(async () => {
    useCommandRunner(undefined);
    await helper.stop();
  });
  afterAll(async () => {
    for (const e of envs) await e.close();
    removeDir(dir);
  });

  async function side(): Promise<Side> {
    const env = await NetnsTestEnv.start();
    envs.push(env);
    return { env, host: new IpRoute(env.nodeNetns), pod: (await env.pod()).path };
  }

  /** Runs `make` on a fresh pair of namespaces spawned, and on another through the helper; both outcomes. */
  async function both(make: (s: Side) => Promise<unknown>): Promise<Array<{ result: unknown; host: unknown; pod: unknown }>> {
    const done: Array<{ s: Side; result: unknown }> = [];
    for (const native of [false, true]) {
      const s = await side();
      useCommandRunner(native ? helper : undefined);
      let result: unknown;
      try {
        result = { ok: await make(s) };
      } catch (e) {
        // The namespaces' names and the host end's random MAC differ from run to run.
        const mask = (t: string): string => t.replaceAll(s.env.id, 'ENV').replace(/\b([0-9a-f]{2}:){5}[0-9a-f]{2}\b/g, 'MAC');
        result = e instanceof CommandError ? { exitCode: e.exitCode, stderr: mask(e.stderr), argv: mask(e.argv.join(' ')) } : { error: mask(String(e)) };
      } finally {
        useCommandRunner(undefined);
      }
      done.push({ s, result });
    }
    // Read at once: settling takes the kernel a second or two either way.
    return Promise.all(done.map(async ({ s, result }) => ({ result, host: await snapshot(s.env.nodeNetns, true), pod: await snapshot(s.pod, false) })));
  }

  const podSpec = (s: Side) => ({ netns: s.pod, ifname: 'eth0', hostIfname: 'pod-0a1b2c3d', mac: '02:aa:00:00:00:05', cidr: '10.244.1.5/24', gateway: '10.244.1.1', mtu: 1450, userspaceDatapath: true });

  it('a primary pod interface: the same veth, address, routes, offloads and sysctls, with no process', async () => {
    const [script, native] = await both(async (s) => {
      await setUpPodInterface(s.host, podSpec(s));
    });
    expect(native).toEqual(script);
    expect(script!.result).toEqual({ ok: undefined });
    expect((native!.pod as Record<string, { addrs: unknown[] }>).eth0!.addrs).toContainEqual(expect.objectContaining({ local: '10.244.1.5', prefixlen: 24 }));
    expect(helper.native.map((r) => [r.code, r.unsupported])).toEqual([[0, undefined]]);
    expect(helper.commands).toBe(0);
  });

  it('a secondary interface: IPv4 and IPv6, routes with metric, table, scope, MTU and advmss, the default route replaced, no link-local', async () => {
    const spec = (s: Side): SecondaryInterfaceSpec => ({
      netns: s.pod,
      ifname: 'net1',
      hostIfname: 'sec-0a1b2c3d',
      mac: '02:aa:00:00:01:05',
      mtu: 1400,
      addresses: ['10.70.0.5/24', 'fd00:70::5/64'],
      routes: [
        { dst: '0.0.0.0/0', gw: '10.70.0.1' },
        { dst: '10.80.0.0/16', gw: '10.70.0.1', priority: 100, mtu: 1300, advmss: 1200 },
        { dst: '10.81.0.0/16', table: 1000, scope: 253 },
        { dst: 'fd00:80::/48', gw: 'fd00:70::1' },
      ],
      userspaceDatapath: true,
      ipv6LinkLocal: false,
      hostUp: false,
    });
    const [script, native] = await both(async (s) => {
      // eth0 with two default routes, as the primary network may leave them: both are replaced.
      await setUpPodInterface(s.host, podSpec(s));
      await new IpRoute(s.pod).apply(new IpBatch().command('route', 'append', 'default', 'via', '10.244.1.254', 'dev', 'eth0'));
      const undo = await setUpSecondaryInterface(s.host, spec(s));
      // The undo puts the replaced default routes back.
      await undo();
    });
    expect(native).toEqual(script);
    expect(helper.native.every((r) => r.unsupported === undefined)).toBe(true);
  });

  it('the secondary interface as it stays: the same state before the undo', async () => {
    const [script, native] = await both(async (s) => {
      await setUpPodInterface(s.host, podSpec(s));
      await setUpSecondaryInterface(s.host, {
        netns: s.pod, ifname: 'net1', hostIfname: 'sec-0a1b2c3d', mac: '02:aa:00:00:01:05', mtu: 1400,
        addresses: ['10.70.0.5/24', 'fd00:70::5/64'],
        routes: [{ dst: '0.0.0.0/0', gw: '10.70.0.1' }, { dst: '::/0', gw: 'fd00:70::1' }, { dst: '10.80.0.0/16', gw: '10.70.0.1', priority: 100, mtu: 1300, advmss: 1200 }],
        userspaceDatapath: true,
      });
    });
    expect(native).toEqual(script);
    const pod = native!.pod as { routes: Array<{ dst: string; dev?: string; gateway?: string }> };
    expect(pod.routes.filter((r) => r.dst === 'default')).toEqual([expect.objectContaining({ dev: 'net1', gateway: '10.70.0.1' }), expect.objectContaining({ dev: 'net1', gateway: 'fd00:70::1' })]);
  });

  it('fails as the script does: a taken name at the first step, an unreachable gateway at the pod step, a missing namespace', async () => {
    const taken = await both(async (s) => {
      await s.host.apply(new IpBatch().addLink('pod-0a1b2c3d', 'bridge'));
      await setUpPodInterface(s.host, podSpec(s));
    });
    expect(taken[1]).toEqual(taken[0]);
    expect(taken[0]!.result).toEqual(expect.objectContaining({ exitCode: STEP_EXIT_BASE, stderr: expect.stringMatching(/File exists/) }));

    const unreachable = await both(async (s) =>
      setUpSecondaryInterface(s.host, { netns: s.pod, ifname: 'net1', hostIfname: 'sec-0a1b2c3d', mac: '02:aa:00:00:01:05', mtu: 1400, addresses: ['10.70.0.5/24'], routes: [{ dst: '10.80.0.0/16', gw: '10.99.0.1' }], userspaceDatapath: false }),
    );
    expect(unreachable[1]).toEqual(unreachable[0]);
    expect(unreachable[0]!.result).toEqual({ error: expect.stringMatching(/^Error: configuring net1 in .*: .*gateway/) });

    const gone = await both(async (s) => setUpPodInterface(s.host, { ...podSpec(s), netns: `${s.pod}-missing` }));
    expect((gone[1]!.result as { exitCode: number }).exitCode).toBe((gone[0]!.result as { exitCode: number }).exitCode);
    expect(gone[1]!.host).toEqual(gone[0]!.host);
  });

  it('runs a line it does not read through iproute2, and best-effort deletes ignore what is gone', async () => {
    const s = await side();
    useCommandRunner(helper);
    await s.host.apply(new IpBatch().addLink('d0', 'bridge').setLink('d0', { up: true }));
    await s.host.apply(new IpBatch().replaceNeigh('10.1.0.9', '02:00:00:00:00:09', 'd0'));
    await s.host.applyBestEffort(new IpBatch().delLink('no-such-link').delLink('d0'));
    useCommandRunner(undefined);
    expect(helper.native.map((r) => r.unsupported !== undefined)).toEqual([true, true, false]);
    expect((await s.host.links()).map((l) => l.ifname)).toEqual(['lo']);
  });
});
