// Seine driven by the real libcni (Debian's golang-github-appc-cni-dev 1.1.2: the CNI library inside
// containerd 1.6/1.7 and podman 4), not by the lab's own runtime. A small Go runtime (libcni-client/)
// loads the conflist install-cni wrote on a lab node and runs ADD, CHECK and DEL through libcni inside the
// node's namespace, for a container that is not a Kubernetes pod (CNI_ARGS as podman passes them).
// Every case checks what libcni made of Seine's answers, traffic to a pod, and that DEL leaves nothing.
// Last, Debian's podman (4.3, its CNI backend on the same libcni) runs a container on the Seine network.
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { CommandError, run } from '../../src/host/exec.js';
import { createNetns, deleteNetns, netnsPath } from '../../src/host/netns.js';
import type { Lab } from '../../src/lab/lab.js';
import type { LabNode } from '../../src/lab/node.js';
import { RECONCILE_INTERVAL_MS } from '../../src/agent/reconciler.js';
import { sleep } from '../../src/util/wait.js';
import { repoRoot } from '../../src/util/paths.js';
import { eventually, podNetns, simplePod, startTestLab, waitRunning } from '../harness/lab.js';
import { netnsLinks, nodeAttachments, type NodeAttachments } from '../harness/node-state.js';

/** Where Debian's golang-github-appc-cni-dev puts libcni (GOPATH layout): built offline, no module download. */
const GOPATH = '/usr/share/gocode';
const CLIENT_SOURCE = join(repoRoot(), 'test', 'e2e', 'libcni-client');
/** The reference plugins (loopback, for the chaining case). */
const REFERENCE_PLUGINS = '/usr/lib/cni';

interface ClientOutcome {
  exitCode: number;
  stderr: string;
  /** stdout decoded: the version libcni ran the list in, and ADD's result as libcni parsed it. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  out: { cniVersion: string; result?: any } | undefined;
}

/** A container that is not a Kubernetes pod: its own network namespace, in the lab's ledger. */
interface Container {
  id: string;
  netnsName: string;
  netns: string;
}

describe('Seine through the real libcni (1.1.2), for a container that is not a pod', () => {
  let work: string;
  let client: string;
  let lab: Lab;
  let node: LabNode;
  let pod: V1Pod;
  let cacheDir: string;
  let base: NodeAttachments;
  let containers = 0;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'seine-libcni-'));
    client = join(work, 'libcni-client');
    await run('go', ['build', '-o', client, '.'], {
      cwd: CLIENT_SOURCE,
      // GOPATH mode against the Debian package; GOPROXY=off: nothing may be fetched.
      env: { ...process.env, GO111MODULE: 'off', GOPATH, GOFLAGS: '', GOPROXY: 'off', GOCACHE: process.env.GOCACHE ?? join(process.env.HOME ?? work, '.cache', 'go-build') },
      timeoutMs: 300_000,
    });
    lab = await startTestLab({ nodes: 1 });
    // From here on a crashed run's leftovers are reaped with the lab's.
    lab.ledger.directory(work);
    node = lab.nodes[0]!;
    cacheDir = join(lab.stateDir, 'libcni-cache');
    mkdirSync(cacheDir);
    lab.ledger.directory(cacheDir);
    await lab.core.createNamespacedPod({ namespace: 'default', body: simplePod('target', { node: node.plan.name }) });
    pod = await waitRunning(lab, 'target');
    base = await nodeAttachments(node);
  }, 420_000);

  afterAll(async () => {
    await lab?.down();
    if (work) rmSync(work, { recursive: true, force: true });
  }, 120_000);

  /** Runs the libcni client inside the node's namespace, as a runtime on that node would. */
  async function libcni(command: 'ADD' | 'CHECK' | 'DEL', c: Container, opts: { confDir?: string; args?: string } = {}): Promise<ClientOutcome> {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      CNI_PATH: `${node.dirs.cniBinDir}:${REFERENCE_PLUGINS}`,
      CNI_CACHE_DIR: cacheDir,
      // What podman passes: the container's name, no namespace.
      CNI_ARGS: opts.args ?? `IgnoreUnknown=1;K8S_POD_NAME=ctr-${c.id.slice(0, 6)}`,
    };
    const argv = [command, opts.confDir ?? node.dirs.cniConfDir, 'seine', c.id, c.netns, 'eth0'];
    try {
      const { stdout, stderr } = await run(client, argv, { netns: node.netns, env, timeoutMs: 90_000 });
      return { exitCode: 0, stderr, out: JSON.parse(stdout) as ClientOutcome['out'] };
    } catch (e) {
      if (!(e instanceof CommandError) || e.exitCode === null) throw e;
      return { exitCode: e.exitCode, stderr: e.stderr, out: undefined };
    }
  }

  async function newContainer(): Promise<Container> {
    const n = ++containers;
    const netnsName = `${lab.plan.name}-lc${n}`;
    lab.ledger.netns(netnsName);
    await createNetns(netnsName);
    return { id: randomBytes(32).toString('hex'), netnsName, netns: netnsPath(netnsName) };
  }

  async function removeContainer(c: Container): Promise<void> {
    await deleteNetns(c.netnsName);
    lab.ledger.forgetNetns(c.netnsName);
  }

  /** After DEL: the node as before the container, its namespace empty but for lo, libcni's cache empty. */
  async function expectNothingLeft(c: Container): Promise<void> {
    expect(await nodeAttachments(node)).toEqual(base);
    expect((await netnsLinks(c.netns)).map((l) => l.ifname)).toEqual(['lo']);
    const cached = existsSync(join(cacheDir, 'results')) ? readdirSync(join(cacheDir, 'results')) : [];
    expect(cached.filter((f) => f.includes(c.id))).toEqual([]);
  }

  /** A conf dir holding the node's conflist as a runtime of another version would have it. */
  function confDirWith(name: string, edit: (list: Record<string, unknown>) => Record<string, unknown>): string {
    const dir = join(work, name);
    mkdirSync(dir);
    const list = JSON.parse(readFileSync(join(node.dirs.cniConfDir, '10-seine.conflist'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, '10-seine.conflist'), JSON.stringify(edit(list)));
    return dir;
  }

  async function ping(fromNetns: string, ip: string): Promise<boolean> {
    return run('ping', ['-c', '1', '-W', '2', ip], { netns: fromNetns, timeoutMs: 10_000 }).then(
      () => true,
      () => false,
    );
  }

  it('ADD, CHECK, traffic to a pod and DEL with the conflist install-cni wrote', async () => {
    const c = await newContainer();
    try {
      const add = await libcni('ADD', c);
      expect({ exitCode: add.exitCode, stderr: add.stderr }).toEqual({ exitCode: 0, stderr: '' });
      // libcni 1.1 reads cniVersion only, and got a result it can parse in that version.
      expect(add.out!.cniVersion).toBe('1.0.0');
      const result = add.out!.result;
      expect(result).toMatchObject({ cniVersion: '1.0.0', interfaces: [{ name: expect.any(String) }, { name: 'eth0', sandbox: c.netns }], ips: [{ interface: 1 }] });
      expect(result.ips[0].version).toBeUndefined();
      const ip = (result.ips[0].address as string).split('/')[0]!;
      const eth0 = (await netnsLinks(c.netns)).find((l) => l.ifname === 'eth0');
      expect(eth0?.address).toBe(result.interfaces[1].mac);

      expect(await libcni('CHECK', c)).toMatchObject({ exitCode: 0 });
      // No pod claims it, but its namespace is there: the agent's reconciliation passes leave it alone.
      await sleep(2 * RECONCILE_INTERVAL_MS + 1000);
      expect(await libcni('CHECK', c)).toMatchObject({ exitCode: 0 });

      const podIp = pod.status!.podIP!;
      await eventually(`ping from the container (${ip}) to pod target (${podIp})`, async () => ((await ping(c.netns, podIp)) ? true : undefined), 30_000);
      await eventually(`ping from pod target to the container (${ip})`, async () => ((await ping(podNetns(lab, pod), ip)) ? true : undefined), 30_000);

      expect(await libcni('DEL', c)).toMatchObject({ exitCode: 0 });
      await expectNothingLeft(c);
      // DEL again (the container's runtime retrying) is fine.
      expect(await libcni('DEL', c)).toMatchObject({ exitCode: 0 });
    } finally {
      await removeContainer(c);
    }
  });

  it('a runtime that runs the list in 0.4.0 gets a 0.4.0 result, and CHECK and DEL work in it', async () => {
    const confDir = confDirWith('conf-040', (list) => ({ ...list, cniVersion: '0.4.0', cniVersions: undefined }));
    const c = await newContainer();
    try {
      const add = await libcni('ADD', c, { confDir });
      expect({ exitCode: add.exitCode, stderr: add.stderr }).toEqual({ exitCode: 0, stderr: '' });
      expect(add.out!.result).toMatchObject({ cniVersion: '0.4.0', interfaces: [{}, { name: 'eth0', sandbox: c.netns }], ips: [{ version: '4', interface: 1 }] });
      expect(await libcni('CHECK', c, { confDir })).toMatchObject({ exitCode: 0 });
      expect(await libcni('DEL', c, { confDir })).toMatchObject({ exitCode: 0 });
      await expectNothingLeft(c);
    } finally {
      await removeContainer(c);
    }
  });

  /** A podman of its own: storage, state and network config under `work`, run in the node's namespace only. */
  function podmanSetup(): { run: (args: string[]) => Promise<string>; rootfs: string } {
    const dir = join(work, 'podman');
    const netDir = join(dir, 'networks');
    const rootfs = join(dir, 'rootfs');
    for (const d of [netDir, join(rootfs, 'bin'), join(rootfs, 'etc'), join(rootfs, 'proc'), join(rootfs, 'sys'), join(rootfs, 'dev'), join(rootfs, 'tmp')]) mkdirSync(d, { recursive: true });
    // A busybox-static tree as the container's root: no image, no registry.
    copyFileSync('/bin/busybox', join(rootfs, 'bin', 'busybox'));
    for (const applet of ['sh', 'sleep', 'ping']) symlinkSync('busybox', join(rootfs, 'bin', applet));
    copyFileSync(join(node.dirs.cniConfDir, '10-seine.conflist'), join(netDir, '10-seine.conflist'));
    const conf = join(dir, 'containers.conf');
    writeFileSync(
      conf,
      [
        '[containers]',
        // Root here cannot raise rlimits; podman's defaults would fail with setrlimit: Operation not permitted.
        'default_ulimits = ["nofile=1024:1024", "nproc=16384:16384"]',
        '[network]',
        'network_backend = "cni"',
        `cni_plugin_dirs = ["${node.dirs.cniBinDir}", "${REFERENCE_PLUGINS}"]`,
        '[engine]',
        'cgroup_manager = "cgroupfs"',
        // crun fails here: cgroups in hybrid mode not supported.
        'runtime = "runc"',
        '',
      ].join('\n'),
    );
    const global = ['--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--tmpdir', join(dir, 'tmp'), '--storage-driver', 'vfs', '--network-config-dir', netDir, '--events-backend', 'none', '--runtime-flag', `root=${join(dir, 'runc')}`];
    return {
      rootfs,
      // Only the node's network namespace is entered: podman's /run/netns mounts must stay visible to the agent.
      run: async (args) => (await run('podman', [...global, ...args], { netns: node.netns, env: { ...process.env, CONTAINERS_CONF: conf }, timeoutMs: 120_000 })).stdout,
    };
  }

  it('podman runs a container on the Seine network: traffic to a pod, nothing left after rm', async () => {
    const podman = podmanSetup();
    const name = `seine-${randomBytes(4).toString('hex')}`;
    try {
      const id = (await podman.run(['run', '-d', '--name', name, '--network', 'seine', '--cap-add', 'NET_RAW', '--rootfs', podman.rootfs, 'sleep', '600'])).trim();
      const info = (JSON.parse(await podman.run(['inspect', name])) as Array<{ State: { Pid: number; ConmonPid: number }; NetworkSettings: { SandboxKey: string; Networks: Record<string, { IPAddress: string }> } }>)[0]!;
      // Recorded, so that a crashed run's container and namespace are reaped with the lab.
      lab.ledger.process(info.State.ConmonPid, 'podman conmon');
      lab.ledger.process(info.State.Pid, 'podman container');
      lab.ledger.netns(basename(info.NetworkSettings.SandboxKey));
      const ip = info.NetworkSettings.Networks.seine!.IPAddress;
      expect(ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      expect((await nodeAttachments(node)).ips).toEqual([...base.ips, `${ip} ${id}/eth0`].sort());
      const podIp = pod.status!.podIP!;
      await eventually(
        `ping from the podman container (${ip}) to pod target (${podIp})`,
        () => podman.run(['exec', name, 'ping', '-c', '1', '-W', '2', podIp]).then(() => true, () => undefined),
        30_000,
      );
      await eventually(`ping from pod target to the podman container (${ip})`, async () => ((await ping(podNetns(lab, pod), ip)) ? true : undefined), 30_000);
      await podman.run(['rm', '-f', '-t', '0', name]);
      expect(await nodeAttachments(node)).toEqual(base);
      expect(existsSync(info.NetworkSettings.SandboxKey)).toBe(false);
      lab.ledger.forgetNetns(basename(info.NetworkSettings.SandboxKey));
      lab.ledger.forgetProcess(info.State.Pid);
      lab.ledger.forgetProcess(info.State.ConmonPid);
      // podman's libcni keeps its result cache in the system's /var/lib/cni: the DEL emptied this container's.
      const cached = existsSync('/var/lib/cni/results') ? readdirSync('/var/lib/cni/results') : [];
      expect(cached.filter((f) => f.includes(id))).toEqual([]);
    } finally {
      await podman.run(['rm', '-f', '-t', '0', '--ignore', name]).catch(() => undefined);
    }
  });

  it('placed after another plugin, ADD fails with a clear CNI error and leaves nothing', async () => {
    const confDir = confDirWith('conf-chained', (list) => ({ ...list, plugins: [{ type: 'loopback' }, ...(list.plugins as unknown[])] }));
    const c = await newContainer();
    try {
      const add = await libcni('ADD', c, { confDir });
      expect(add.exitCode).toBe(1);
      expect(add.stderr).toContain('prevResult from another plugin is not supported in this mode');
      expect(await nodeAttachments(node)).toEqual(base);
      // The runtime's clean-up after a failed ADD.
      expect(await libcni('DEL', c, { confDir })).toMatchObject({ exitCode: 0 });
      await expectNothingLeft(c);
    } finally {
      await removeContainer(c);
    }
  });
});
