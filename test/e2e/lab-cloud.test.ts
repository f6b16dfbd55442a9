import { existsSync, readdirSync } from 'node:fs';
import { listNetns } from '../../src/host/netns.js';
import { run } from '../../src/host/exec.js';
import type { Lab } from '../../src/lab/lab.js';
import type { CloudProfile } from '../../src/lab/cloud/plan.js';
import { eventually, kubectl, podExec, simplePod, startTestLab, waitRunning } from '../harness/lab.js';

/** A cloud lab without Seine: the cloud's CNI alone carries pods between nodes and to the external host. */
function cloudLab(profile: CloudProfile, conflist: string, podPrefix: string): void {
  describe(`lab --profile ${profile} without Seine`, () => {
    let lab: Lab;
    beforeAll(async () => {
      lab = await startTestLab({ profile, seine: false, nodes: 2 });
    }, 180_000);
    afterAll(async () => {
      await lab?.down();
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

    it("installs Seine later (chained install-cni keeps 05-seine.conflist) and removes it again, the cloud's conflist untouched", async () => {
      await lab.installSeine();
      expect(lab.status().seineInstalled).toBe(true);
      for (const node of lab.nodes) {
        await eventually(`05-seine.conflist on ${node.plan.name}`, async (saw) => {
          const files = readdirSync(node.dirs.cniConfDir);
          saw(files);
          return files.includes('05-seine.conflist') ? true : undefined;
        }, 60_000);
        expect(lab.status().nodes.find((n) => n.name === node.plan.name)?.installCni).toEqual(expect.any(Number));
      }
      await lab.uninstallSeine();
      expect(lab.status().seineInstalled).toBe(false);
      for (const node of lab.nodes) expect(readdirSync(node.dirs.cniConfDir)).toEqual([conflist]);
      expect(lab.agents.size + lab.installCni.size).toBe(0);
    }, 180_000);
  });
}

cloudLab('eks', '10-aws.conflist', '10.100');
cloudLab('aks', '10-azure.conflist', '10.224');

describe('lab --profile down', () => {
  it('leaves no namespace behind', async () => {
    const lab = await startTestLab({ profile: 'eks', seine: false, nodes: 1 });
    const names = [lab.plan.fabricNetns, lab.plan.externalNetns, ...lab.plan.nodes.map((n) => n.netns)];
    expect(listNetns()).toEqual(expect.arrayContaining(names));
    await lab.down();
    expect(listNetns().filter((n) => n.startsWith(`${lab.plan.name}-`))).toEqual([]);
    expect(existsSync(lab.stateDir)).toBe(false);
  }, 180_000);
});
