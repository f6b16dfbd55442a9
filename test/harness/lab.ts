import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { V1Pod } from '@kubernetes/client-node';
import { Lab, type LabOptions } from '../../src/lab/lab.js';
import { run } from '../../src/host/exec.js';
import { netnsPath } from '../../src/host/netns.js';
import { podNetnsName } from '../../src/lab/kubelet.js';
import { TEST_LEDGER_ROOT } from './sandbox.js';
import { eventually } from '../../src/util/wait.js';

const execFileP = promisify(execFile);

/** Starts a lab with a unique name whose ledger lives with the other test ledgers (reaped after a crash). */
export async function startTestLab(opts: Omit<LabOptions, 'name' | 'stateRoot'> = {}): Promise<Lab> {
  return Lab.up({ ...opts, name: `t${randomBytes(3).toString('hex')}`, stateRoot: TEST_LEDGER_ROOT });
}

export async function kubectl(lab: Lab, args: string[]): Promise<string> {
  const { stdout } = await execFileP('kubectl', ['--kubeconfig', lab.kubeconfigPath, '--cache-dir', `${lab.stateDir}/kube-cache`, ...args], { timeout: 60_000 });
  return stdout;
}

export { eventually };

export function simplePod(name: string, opts: { node?: string; command?: string[]; namespace?: string; annotations?: Record<string, string> } = {}): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: opts.namespace ?? 'default', annotations: opts.annotations },
    spec: {
      nodeName: opts.node,
      containers: [{ name: 'main', image: 'lab', command: opts.command ?? ['sleep', 'infinity'] }],
    },
  };
}

export async function waitRunning(lab: Lab, name: string, namespace = 'default', timeoutMs = 90_000): Promise<V1Pod> {
  return eventually(`pod ${namespace}/${name} Running`, async (saw) => {
    const p = await lab.core.readNamespacedPod({ name, namespace });
    saw({ phase: p.status?.phase, podIP: p.status?.podIP, conditions: p.status?.conditions?.map((c) => `${c.type}=${c.status}${c.reason ? ` (${c.reason})` : ''}`) });
    return p.status?.phase === 'Running' && p.status.podIP ? p : undefined;
  }, timeoutMs);
}

/** Runs a command inside a pod's network namespace. */
export async function podExec(lab: Lab, pod: V1Pod, argv: string[], timeoutMs = 20_000): Promise<string> {
  const ns = netnsPath(podNetnsName(lab.plan.name, pod.metadata!.uid!));
  const { stdout } = await run(argv[0]!, argv.slice(1), { netns: ns, timeoutMs });
  return stdout;
}

export function podNetns(lab: Lab, pod: V1Pod): string {
  return netnsPath(podNetnsName(lab.plan.name, pod.metadata!.uid!));
}
