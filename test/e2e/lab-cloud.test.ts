import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { listNetns } from '../../src/host/netns.js';
import { run } from '../../src/host/exec.js';
import type { Lab } from '../../src/lab/lab.js';
import type { CloudProfile } from '../../src/lab/cloud/plan.js';
import { serveLabControl } from '../../src/lab/control.js';
import { repoRoot } from '../../src/util/paths.js';
import { docBlock, runAsUser, userShellDirs } from '../harness/doc-blocks.js';
import { eventually, kubectl, podExec, simplePod, startTestLab, waitRunning } from '../harness/lab.js';
import { TEST_LEDGER_ROOT } from '../harness/sandbox.js';

/** docs/<profile>.md's "Try it in the lab": its first part (a lab with Seine chained), and its second (the cloud's CNI alone, then Seine installed and removed). */
function tryItBlock(profile: CloudProfile): { chained: string[]; later: string[] } {
  const lines = docBlock(join(repoRoot(), 'docs', `${profile}.md`), '## Try it in the lab').trim().split('\n');
  const gap = lines.indexOf('');
  return { chained: lines.slice(0, gap), later: lines.slice(gap + 1) };
}

/**
 * A cloud lab without Seine: the cloud's CNI alone carries pods between nodes and to the external host. Seine is
 * then installed and removed by the doc's own commands (its `seine lab up --profile ... --without-seine` is this lab).
 */
function cloudLab(profile: CloudProfile, conflist: string, podPrefix: string): void {
  describe(`lab --profile ${profile} without Seine`, () => {
    let lab: Lab;
    let control: Server | undefined;
    beforeAll(async () => {
      lab = await startTestLab({ profile, seine: false, nodes: 2 });
      // As `seine lab up` does: the status file, and the control socket that install-seine and uninstall-seine ask.
      lab.writeStatus();
      control = serveLabControl(lab);
    }, 180_000);
    afterAll(async () => {
      await new Promise((r) => (control ? control.close(r) : r(undefined)));
      await lab?.down();
      if (lab) for (const dir of userShellDirs(lab.plan.name)) rmSync(dir, { recursive: true, force: true });
    }, 120_000);

    it('registers Ready nodes without podCIDR, each with the cloud conflist', async () => {
      await eventually('both nodes Ready', async (saw) => {
        const out = await kubectl(lab, ['get', 'nodes']);
        saw(out);
        return (out.match(/\bReady\b/g) ?? []).length === 2 ? out : undefined;
      }, 60_000);
      const json = JSON.parse(await kubectl(lab, ['get', 'nodes', '-o', 'json']));
      expect(json.items.map((n: { spec: { podCIDR?: string } }) => n.spec.podCIDR)).toEqual([undefined, undefined]);
      for (const node of lab.nodes) expect(existsSync(`${node.dirs.cniConfDir}/${conflist}`)).toBe(true);
      expect(lab.status().profile).toBe(profile);
      expect(lab.status().seineInstalled).toBe(false);
    });

    it('pods on both nodes get cloud addresses and reach each other and the external host', async () => {
      const [n1, n2] = lab.plan.nodes;
      await lab.core.createNamespacedPod({ namespace: 'default', body: simplePod('a', { node: n1!.name }) });
      await lab.core.createNamespacedPod({ namespace: 'default', body: simplePod('b', { node: n2!.name }) });
      const a = await waitRunning(lab, 'a');
      const b = await waitRunning(lab, 'b');
      // Each from its node's block of the cloud range.
      expect(a.status!.podIP).toMatch(new RegExp(`^${podPrefix.replaceAll('.', '\\.')}\\.1\\.`));
      expect(b.status!.podIP).toMatch(new RegExp(`^${podPrefix.replaceAll('.', '\\.')}\\.2\\.`));
      for (const [from, to] of [
        [a, b.status!.podIP!],
        [b, a.status!.podIP!],
        [a, lab.plan.externalIp],
      ] as const) {
        await eventually(`ping from ${from.metadata!.name} to ${to}`, async (saw) => {
          const ok = await podExec(lab, from, ['ping', '-c', '1', '-W', '2', to]).then(() => true, (e: Error) => (saw(e.message), false));
          return ok ? true : undefined;
        }, 30_000);
      }
      // The external host reaches pods directly (a host in the VPC / VNet).
      await run('ping', ['-c', '1', '-W', '2', a.status!.podIP!], { netns: lab.externalNetns, timeoutMs: 10_000 });
    });

    it(`docs/${profile}.md: installs Seine later (chained install-cni keeps 05-seine.conflist) and removes it again, the cloud's conflist untouched`, async () => {
      const { later } = tryItBlock(profile);
      // The doc's lab is this one.
      expect(later[0]).toMatch(new RegExp(`^seine lab up --profile ${profile} --without-seine\\b`));
      const install = later.filter((l) => l.startsWith('seine lab install-seine'));
      const uninstall = later.filter((l) => l.startsWith('seine lab uninstall-seine'));
      expect([install.length, uninstall.length, later.length]).toEqual([1, 1, 3]);
      expect(await runAsUser(install, lab.plan.name)).toMatch(new RegExp(`^Seine installed in lab '${lab.plan.name}'$`, 'm'));
      expect(lab.status().seineInstalled).toBe(true);
      for (const node of lab.nodes) {
        await eventually(`05-seine.conflist on ${node.plan.name}`, async (saw) => {
          const files = readdirSync(node.dirs.cniConfDir);
          saw(files);
          return files.includes('05-seine.conflist') ? true : undefined;
        }, 60_000);
        expect(lab.status().nodes.find((n) => n.name === node.plan.name)?.installCni).toEqual(expect.any(Number));
      }
      expect(await runAsUser(uninstall, lab.plan.name)).toMatch(new RegExp(`^Seine removed from lab '${lab.plan.name}'$`, 'm'));
      expect(lab.status().seineInstalled).toBe(false);
      for (const node of lab.nodes) expect(readdirSync(node.dirs.cniConfDir)).toEqual([conflist]);
      expect(lab.agents.size + lab.installCni.size).toBe(0);
    }, 180_000);
  });
}

cloudLab('eks', '10-aws.conflist', '10.100');
cloudLab('aks', '10-azure.conflist', '10.224');

/**
 * docs/<profile>.md's "Try it in the lab", its first part run as written: a lab with Seine chained (status, pods,
 * events) and down; nothing with its name is left. Its second part runs in the cloud lab above.
 */
function tryIt(profile: CloudProfile): void {
  it(`docs/${profile}.md's "Try it in the lab" runs as written, and lab down leaves nothing behind`, async () => {
    const name = `d${randomBytes(3).toString('hex')}`;
    const lines = tryItBlock(profile).chained;
    expect(lines.at(-1)).toBe('seine lab down');
    let out: string;
    try {
      out = await runAsUser(lines, name, 600_000);
    } finally {
      await runAsUser(['seine lab down'], name).catch(() => undefined);
      for (const dir of userShellDirs(name)) rmSync(dir, { recursive: true, force: true });
    }
    // Seine chained: the status names each node's pod block, ENIs and install-cni; the pods are created; the lab goes.
    expect(out).toMatch(new RegExp(`^lab '${name}' is up with \\d+ nodes \\(${profile}, Seine chained\\)`, 'm'));
    expect(out).toMatch(/^NODE\s+NETNS\s+IP\s+POD BLOCK\s+ENIS\s+INSTALL-CNI\s/m);
    expect(out).toMatch(/^pod\/server created$/m);
    expect(out).toMatch(new RegExp(`^lab '${name}' removed$`, 'm'));
    expect(listNetns().filter((n) => n.startsWith(`${name}-`))).toEqual([]);
    expect(readdirSync(TEST_LEDGER_ROOT).filter((f) => f.startsWith(name))).toEqual([]);
  }, 900_000);
}

describe('docs: the cloud profiles in the lab', () => {
  tryIt('eks');
  tryIt('aks');
});
