// `seine get networkpolicies` in a lab started by the CLI: a NetworkPolicy applied with kubectl on pods of both nodes
// is reported realized on 2 of 2 nodes once the agents have installed it, read from the controller with the
// kubeconfig's own user (which the lab API server authorizes: kubectl auth can-i says so too).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { eventually } from '../../src/util/wait.js';
import { runCommand } from '../harness/command.js';
import { TEST_LEDGER_ROOT } from '../harness/sandbox.js';

const execFileP = promisify(execFile);
const SEINE = join(process.cwd(), 'bin', 'seine');
const name = `r${randomBytes(3).toString('hex')}`;
const common = ['--name', name, '--state-root', TEST_LEDGER_ROOT];
const cache = join(TEST_LEDGER_ROOT, `${name}-kcache`);

const pods = (nodes: string[]): string => `
apiVersion: v1
kind: Namespace
metadata: {name: shop}
${nodes
  .map(
    (node, i) => `---
apiVersion: v1
kind: Pod
metadata: {name: web${i + 1}, namespace: shop, labels: {app: web}}
spec:
  nodeName: ${node}
  containers: [{name: main, image: lab, command: [sleep, infinity]}]`,
  )
  .join('\n')}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-clients, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}]}]
`;

const run = (cmd: string, args: string[], input?: string): ReturnType<typeof runCommand> => runCommand(cmd, args, input, 120_000);

describe('seine get networkpolicies in a lab', () => {
  let kubeconfig = '';
  afterAll(async () => {
    await execFileP(SEINE, ['lab', 'down', ...common], { timeout: 120_000 }).catch(() => undefined);
    rmSync(cache, { recursive: true, force: true });
  }, 150_000);

  it('says 2/2 once the agents of both nodes have installed the policy', async () => {
    const up = await run(SEINE, ['lab', 'up', '--nodes', '2', ...common]);
    expect(up.stdout).toMatch(/is up with 2 nodes/);
    kubeconfig = (await run(SEINE, ['lab', 'kubeconfig', ...common])).stdout.trim();
    const kubectl = (args: string[], input?: string): ReturnType<typeof run> => run('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', cache, ...args], input);
    const canI = await kubectl(['auth', 'can-i', 'list', 'networkpolicies', '-A']);
    expect(canI).toMatchObject({ code: 0, stdout: 'yes\n' });

    const applied = await kubectl(['apply', '-f', '-'], pods([`${name}-node1`, `${name}-node2`]));
    expect(applied.stderr).toBe('');
    const seineGet = (...args: string[]): ReturnType<typeof run> => run(SEINE, ['get', ...args, '--kubeconfig', kubeconfig]);
    const table = await eventually(
      'seine get netpol -A to say 2/2',
      async (saw) => {
        const r = await seineGet('netpol', '-A');
        saw(r);
        return r.code === 0 && /\b2\/2\b/.test(r.stdout) ? r.stdout : undefined;
      },
      120_000,
      1000,
    );
    expect(table).toMatch(/^NAMESPACE\s+NAME\s+REALIZED\s+AGE\nshop\s+web-from-clients\s+2\/2\s+(\d+[smhdy])+\n$/);
    const wide = await seineGet('networkpolicy', 'web-from-clients', '-n', 'shop', '-o', 'wide');
    expect(wide.stdout).toMatch(/^web-from-clients\s+2\/2\s+(\d+[smhdy])+\s+1\s+<none>$/m);

    // A new generation is realized once both agents have installed it.
    const patched = await kubectl(['patch', 'networkpolicy', 'web-from-clients', '-n', 'shop', '--type=merge', '-p', '{"spec":{"ingress":[{"from":[{"podSelector":{"matchLabels":{"app":"other"}}}]}]}}']);
    expect(patched.code).toBe(0);
    const second = await eventually(
      'generation 2 realized on both nodes',
      async (saw) => {
        const r = await seineGet('netpol', '-n', 'shop', '-o', 'json');
        saw(r);
        const item = r.code === 0 ? (JSON.parse(r.stdout) as { items: Array<{ generation: number; nodes: { realized: number } }> }).items[0] : undefined;
        return item?.generation === 2 && item.nodes.realized === 2 ? r.stdout : undefined;
      },
      120_000,
      1000,
    );
    expect(Object.keys((JSON.parse(second) as { nodes: Record<string, unknown> }).nodes).sort()).toEqual([`${name}-node1`, `${name}-node2`]);
  }, 400_000);
});
