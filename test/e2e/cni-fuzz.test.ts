// A seeded fuzz test of the CNI plugin: seine-cni run as a container runtime runs it (env + stdin, in the
// node's namespace, against the node's real agent and Open vSwitch), with a fixed number of generated calls
// mixing valid and malformed stdin, CNI_COMMAND, CNI_NETNS (control characters, iproute2 batch syntax),
// CNI_IFNAME, CNI_CONTAINERID and CNI_ARGS. Every call must end within its (generous) time with a CNI result or
// error object, a failed ADD leaves the node as it was; afterwards, with the successful attachments deleted, the agent must still be the same process
// and the node must hold exactly what it held before: OVS ports, links, namespaces, IPAM and flows.
// Reproduce a run with SEINE_FUZZ_SEED=<the printed seed>.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CniError } from '../../src/cni/errors.js';
import { resultProblems } from '../../src/cni/schema/validate.js';
import { CommandError, run } from '../../src/host/exec.js';
import { createNetns, listNetns, netnsPath } from '../../src/host/netns.js';
import type { Lab } from '../../src/lab/lab.js';
import type { LabNode } from '../../src/lab/node.js';
import { SEINE_CNI_BINARY } from '../../src/cni/plugin-binary.js';
import { eventually, startTestLab } from '../harness/lab.js';

/** Fixed, so the run's length depends on the machine's speed only, never its outcome. */
const CASES = 300;
/** Per call: far above a CNI call's cost on a loaded 2-core machine, below the agent's own 45 s answer. */
const CALL_TIMEOUT_MS = 60_000;

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Call {
  env: Record<string, string | undefined>;
  stdin: string;
}

interface Snapshot {
  ports: string[];
  nodeLinks: string[];
  sandboxLinks: string[];
  namespaces: string[];
  ipam: string[];
  flows: string[];
}

describe('seine-cni under seeded fuzzing', () => {
  const seed = process.env.SEINE_FUZZ_SEED ? Number(process.env.SEINE_FUZZ_SEED) : randomBytes(4).readUInt32BE(0);
  let lab: Lab;
  let node: LabNode;
  let pluginConf: Record<string, unknown>;
  const sandboxes: string[] = [];
  /**
   * Namespace paths that hold iproute2 batch syntax after a newline and exist (bind mounts of the first
   * sandbox), so that a CNI_NETNS carrying them gets past "does the namespace exist" to the code that uses it.
   */
  const injectionPaths: string[] = [];
  let injected = '';

  beforeAll(async () => {
    // Printed first, so a failing run can always be replayed.
    process.stdout.write(`cni-fuzz seed: ${seed} (SEINE_FUZZ_SEED=${seed} reproduces this run)\n`);
    lab = await startTestLab({ nodes: 1 });
    node = lab.nodes[0]!;
    const conflist = JSON.parse(readFileSync(join(node.dirs.cniConfDir, '10-seine.conflist'), 'utf8')) as { name: string; cniVersion: string; plugins: Array<Record<string, unknown>> };
    pluginConf = { ...conflist.plugins[0], name: conflist.name, cniVersion: conflist.cniVersion };
    for (let i = 0; i < 3; i++) {
      const name = `${lab.plan.name}-fz${i}`;
      lab.ledger.netns(name);
      await createNetns(name);
      sandboxes.push(netnsPath(name));
    }
    injected = `${lab.plan.name}x`;
    for (const line of [`link add name ${injected} type bridge`, 'link set dev no-such-dev up']) {
      const path = `${sandboxes[0]}\n${line}`;
      writeFileSync(path, '');
      injectionPaths.push(path);
      await run('mount', ['--bind', sandboxes[0]!, path]);
    }
    await eventually('the seine agent answers STATUS', async () => ((await exec({ CNI_COMMAND: 'STATUS', CNI_PATH: node.dirs.cniBinDir }, stdinFor({ cniVersion: '1.1.0' }))).exitCode === 0 ? true : undefined), 60_000);
  }, 180_000);

  afterAll(async () => {
    for (const path of injectionPaths) {
      await run('umount', [path]).catch(() => undefined);
      rmSync(path, { force: true });
    }
    await lab?.down();
  }, 120_000);

  function stdinFor(extra: Record<string, unknown> = {}): string {
    return JSON.stringify({ ...pluginConf, ...extra });
  }

  /** Whether a config sends the plugin to this node's agent (the socket the node's conflist names). */
  function reachesAgent(stdin: string): boolean {
    try {
      const conf = JSON.parse(stdin) as { cniSocket?: unknown } | null;
      return typeof conf === 'object' && conf !== null && conf.cniSocket === pluginConf.cniSocket;
    } catch {
      return false;
    }
  }

  /** Runs seine-cni inside the node namespace with exactly `env` (plus PATH/HOME) and `stdin`. */
  async function exec(env: Record<string, string | undefined>, stdin: string): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const full: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME };
    for (const [k, v] of Object.entries(env)) if (v !== undefined) full[k] = v;
    try {
      const { stdout, stderr } = await run(SEINE_CNI_BINARY, [], { netns: node.netns, env: full, input: stdin, timeoutMs: CALL_TIMEOUT_MS });
      return { exitCode: 0, stdout, stderr };
    } catch (e) {
      if (!(e instanceof CommandError) || e.exitCode === null) throw new Error(`seine-cni did not end within ${CALL_TIMEOUT_MS} ms or was killed: ${String(e)}`, { cause: e });
      return { exitCode: e.exitCode, stdout: e.stdout, stderr: e.stderr };
    }
  }

  /** Links inside a network namespace (name and kind; counters and state left out). */
  async function linksIn(netns: string): Promise<string[]> {
    const { stdout } = await run('ip', ['-json', '-details', 'link', 'show'], { netns });
    return (JSON.parse(stdout || '[]') as Array<{ ifname: string; linkinfo?: { info_kind?: string } }>).map((l) => `${l.ifname} ${l.linkinfo?.info_kind ?? ''}`).sort();
  }

  async function snapshot(): Promise<Snapshot> {
    const ipamFile = join(node.dirs.stateDir, 'ipam-ipv4.json');
    const allocations = existsSync(ipamFile) ? (JSON.parse(readFileSync(ipamFile, 'utf8')) as { allocations: Array<{ ip: string; containerId: string; ifname: string }> }).allocations : [];
    const { stdout: flows } = await run('ovs-ofctl', ['-O', 'OpenFlow15', '--no-stats', 'dump-flows', node.ovs.bridgeMgmt('br-int')]);
    return {
      ports: (await node.ovs.vsctl(['list-ports', 'br-int'])).split('\n').filter(Boolean).sort(),
      nodeLinks: await linksIn(node.netns),
      sandboxLinks: (await Promise.all(sandboxes.map(async (s) => (await linksIn(s)).map((l) => `${s} ${l}`)))).flat(),
      namespaces: listNetns().filter((n) => n.startsWith(lab.plan.name)).sort(),
      ipam: allocations.map((a) => `${a.ip} ${a.containerId}/${a.ifname}`).sort(),
      flows: flows.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('OFPST_FLOW')).sort(),
    };
  }

  /** What differs between two snapshots, per part: entries gone and entries new. */
  function diff(a: Snapshot, b: Snapshot): Record<string, { gone: string[]; new: string[] }> {
    const out: Record<string, { gone: string[]; new: string[] }> = {};
    for (const k of Object.keys(a) as Array<keyof Snapshot>) {
      const gone = a[k].filter((x) => !b[k].includes(x));
      const added = b[k].filter((x) => !a[k].includes(x));
      if (gone.length || added.length) out[k] = { gone, new: added };
    }
    return out;
  }

  it(`${CASES} generated calls: each answered in time with a CNI object; agent and node unchanged afterwards`, async () => {
    const rnd = prng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const containerIds = Array.from({ length: 4 }, () => Array.from({ length: 64 }, () => '0123456789abcdef'[Math.floor(rnd() * 16)]).join(''));

    // Each call starts as one a runtime would make, then 0 to 2 of its parts are replaced by hostile values:
    // a bad value then meets the code behind the checks it passes instead of the first one it fails.
    const hostileNetns = (good: string): string =>
      pick([
        ...injectionPaths,
        `${good}\r`,
        `${good} # comment`,
        `${good}\\`,
        `"${good}"`,
        `${good}/../${good.split('/').pop()!}`,
        '/var/run/netns/does-not-exist',
        'relative/netns',
        '/tmp',
        '',
        '\u00e9\u202e',
        'x'.repeat(5000),
      ]);
    const hostileIfname = (): string => pick(['', 'x'.repeat(16), 'a/b', 'a:b', 'eth 0', 'eth0\n', '..', '-h', '#x', '\u00e9\u00e9', 'e\tx', 'net1']);
    const hostileCommand = (): string => pick(['VERSION', 'STATUS', 'GC', '', 'add', 'BOGUS', 'ADD\n']);
    const hostileId = (): string => pick(['', 'x'.repeat(300), 'bad id', 'a\nb', '../..', pick(containerIds).toUpperCase()]);
    const hostileArgs = (id: string): string =>
      pick([
        '',
        'garbage',
        'K8S_POD_NAME=only-a-name',
        'FOO=bar',
        'IgnoreUnknown=maybe;FOO=bar',
        `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=fz\n${id.slice(0, 4)}`,
        `IgnoreUnknown=1;${'K=v;'.repeat(2000)}`,
        '=;;=',
      ]);
    const hostileStdin = (): string =>
      pick([
        '',
        '{',
        'null',
        '[]',
        '"x"',
        randomJunk(),
        stdinFor({ cniVersion: '9.9.9' }),
        stdinFor({ cniVersion: '0.1.0' }),
        stdinFor({ name: undefined }),
        stdinFor({ name: 'n\u0000ame' }),
        stdinFor({ prevResult: { cniVersion: pluginConf.cniVersion, ips: 'nope' } }),
        stdinFor({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: pick(containerIds), ifname: 'eth0' }] }),
        stdinFor({ runtimeConfig: { x: 'y'.repeat(100_000) } }),
        `{"x":${'['.repeat(5000)}${']'.repeat(5000)}}`,
        stdinFor().slice(0, Math.floor(rnd() * stdinFor().length)),
      ]);
    function randomJunk(): string {
      return Array.from({ length: 1 + Math.floor(rnd() * 64) }, () => String.fromCharCode(Math.floor(rnd() * 0x250))).join('');
    }

    const generate = (): Call => {
      const id = pick(containerIds);
      const netns = pick(sandboxes);
      const env: Record<string, string | undefined> = {
        CNI_COMMAND: pick(['ADD', 'ADD', 'ADD', 'DEL', 'DEL', 'CHECK']),
        CNI_CONTAINERID: id,
        CNI_NETNS: netns,
        CNI_IFNAME: 'eth0',
        CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=fz-${id.slice(0, 6)};K8S_POD_INFRA_CONTAINER_ID=${id}`,
        CNI_PATH: node.dirs.cniBinDir,
      };
      let stdin = stdinFor();
      const mutations = Math.floor(rnd() * 3);
      for (let m = 0; m < mutations; m++) {
        const field = pick(['CNI_NETNS', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_ARGS', 'CNI_PATH', 'stdin', 'stdin', 'unset']);
        if (field === 'stdin') stdin = hostileStdin();
        else if (field === 'unset') env[pick(Object.keys(env))] = undefined;
        else if (field === 'CNI_NETNS') env.CNI_NETNS = hostileNetns(netns);
        else if (field === 'CNI_IFNAME') env.CNI_IFNAME = hostileIfname();
        else if (field === 'CNI_COMMAND') env.CNI_COMMAND = hostileCommand();
        else if (field === 'CNI_CONTAINERID') env.CNI_CONTAINERID = hostileId();
        else if (field === 'CNI_ARGS') env.CNI_ARGS = hostileArgs(id);
        else env.CNI_PATH = pick(['', '/nonexistent', `${node.dirs.cniBinDir}:${'x'.repeat(4000)}`]);
      }
      return { env, stdin };
    };

    const agent = lab.agents.get(node.plan.name)!;
    const pidBefore = agent.pid;
    const before = await snapshot();
    /** Successful ADDs, by attachment, with the env that made them (DEL replays it, as libcni does). */
    const added = new Map<string, Call>();
    const problems: string[] = [];
    /** Outcomes by exit code and CNI error code, printed with the seed. */
    const outcomes = new Map<string, number>();
    const count = (k: string): void => void outcomes.set(k, (outcomes.get(k) ?? 0) + 1);

    for (let i = 0; i < CASES; i++) {
      const call = generate();
      // A failed ADD must leave the node as it found it, whatever a later call would clean up.
      const beforeAdd = call.env.CNI_COMMAND === 'ADD' ? await snapshot() : undefined;
      const out = await exec(call.env, call.stdin);
      const what = `case ${i} (seed ${seed}): ${JSON.stringify(call.env)} stdin ${JSON.stringify(call.stdin.slice(0, 200))}`;
      let json: unknown;
      try {
        json = out.stdout.trim() ? JSON.parse(out.stdout) : undefined;
      } catch {
        problems.push(`${what}: stdout is not JSON: ${JSON.stringify(out.stdout.slice(0, 300))}`);
        continue;
      }
      count(out.exitCode === 0 ? `${call.env.CNI_COMMAND} ok` : `code ${(json as { code?: unknown } | undefined)?.code}`);
      if (out.exitCode !== 0 && beforeAdd) {
        const after = await snapshot();
        if (JSON.stringify(after) !== JSON.stringify(beforeAdd)) problems.push(`${what}: the failed ADD left the node changed: ${JSON.stringify(diff(beforeAdd, after))}`);
      }
      if (out.exitCode !== 0) {
        if (!CniError.isErrorJson(json)) problems.push(`${what}: exit ${out.exitCode} without a CNI error object: ${out.stdout.slice(0, 300)}`);
        continue;
      }
      const key = `${call.env.CNI_CONTAINERID}/${call.env.CNI_IFNAME}`;
      if (call.env.CNI_COMMAND === 'ADD') {
        const found = resultProblems(json);
        if (found.length) problems.push(`${what}: ADD succeeded with an invalid result: ${found.join('; ')}`);
        added.set(key, call);
      } else if (call.env.CNI_COMMAND === 'DEL') {
        // Only a DEL that reached this node's agent releases anything. One whose config names no socket (or another)
        // finds no agent there and succeeds by the rule for an unreachable agent (docs/cni-plugin.md): the
        // attachment stays, and the final DEL with the ADD's own config releases it.
        if (reachesAgent(call.stdin)) added.delete(key);
      } else if (call.env.CNI_COMMAND === 'VERSION') {
        if (typeof (json as { cniVersion?: unknown } | undefined)?.cniVersion !== 'string') problems.push(`${what}: VERSION without a version object`);
      } else if (json !== undefined) {
        problems.push(`${what}: ${call.env.CNI_COMMAND} succeeded with output ${out.stdout.slice(0, 300)}`);
      }
    }
    // Every attachment a call made goes, with the call that made it (a later GC may have removed it already).
    for (const call of added.values()) {
      const out = await exec({ ...call.env, CNI_COMMAND: 'DEL' }, call.stdin);
      if (out.exitCode !== 0) problems.push(`DEL of ${JSON.stringify(call.env)} failed: ${out.stdout}`);
    }

    process.stdout.write(`cni-fuzz seed ${seed}: ${[...outcomes].sort().map(([k, n]) => `${k}: ${n}`).join(', ')}; ${added.size} attachments deleted at the end\n`);
    expect(problems).toEqual([]);
    expect(agent.pid).toBe(pidBefore);
    expect(await snapshot()).toEqual(before);
  }, 30 * 60_000);
});
