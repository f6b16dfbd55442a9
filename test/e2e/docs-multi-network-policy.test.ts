// docs/secondary-networks.md's MultiNetworkPolicy walk-through, run as written (its shell block, with the stock
// kubectl and the `seine` CLI) in a 2-node lab: what it says it shows, it shows.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/host/exec.js';
import type { Lab } from '../../src/lab/lab.js';
import { repoRoot } from '../../src/util/paths.js';
import { startTestLab } from '../harness/lab.js';
import { TEST_LEDGER_ROOT } from '../harness/sandbox.js';

/** The first ```sh block after `heading` in a markdown file. */
function shellBlock(file: string, heading: string): string {
  const text = readFileSync(file, 'utf8');
  const from = text.indexOf(`\n${heading}\n`);
  if (from < 0) throw new Error(`${file}: no section ${heading}`);
  const m = /```sh\n([\s\S]*?)```/.exec(text.slice(from));
  if (!m) throw new Error(`${file}: no shell block in ${heading}`);
  return m[1]!;
}

describe('docs: MultiNetworkPolicy walk-through', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await startTestLab({ nodes: 2 });
    // `seine lab exec` finds a lab by its status file, which a supervised lab writes.
    lab.writeStatus();
  }, 180_000);

  afterAll(async () => {
    await lab?.down();
  }, 120_000);

  it('connects the client, refuses the other pod on vlan100 only, and reports the policy enforced and realized', async () => {
    const root = repoRoot();
    const block = shellBlock(join(root, 'docs', 'secondary-networks.md'), '## MultiNetworkPolicy');
    // `seine` as a user has it, pointed at this lab (the docs use the default lab name).
    const prelude = `seine() { if [ "$1" = lab ] && [ "$2" = exec ]; then shift 2; node ${join(root, 'bin', 'seine')} lab exec --name ${lab.plan.name} "$@"; else node ${join(root, 'bin', 'seine')} "$@"; fi; }\n`;
    const { stdout } = await run('bash', ['-c', `${prelude}set -e\n${block}`], {
      cwd: root,
      env: { ...process.env, KUBECONFIG: lab.kubeconfigPath, SEINE_LAB_ROOT: TEST_LEDGER_ROOT },
      timeoutMs: 300_000,
    });
    const lines = stdout.split('\n').filter((l) => /^(connects|refused)$/.test(l));
    expect(lines).toEqual(['connects', 'refused', 'connects']);
    expect(stdout).toMatch(/^NetworksEnforced: enforced on default\/vlan100$/m);
    // Realized follows the agents' reports (within a second or so): the condition is there, whichever count it has reached.
    expect(stdout).toMatch(/^Realized: realized on \d of 1 nodes/m);
  }, 400_000);
});
