// Reading the docs' examples as written, for the tests that run them.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/host/exec.js';
import { repoRoot } from '../../src/util/paths.js';
import { TEST_LEDGER_ROOT } from './sandbox.js';

/** The `n`th fenced block (```sh, or a bare ``` with `lang` '') after `heading` in a markdown file. */
export function docBlock(file: string, heading: string, lang = 'sh', n = 0): string {
  // A leading newline, so that the title on the file's first line is a heading too.
  const text = `\n${readFileSync(file, 'utf8')}`;
  const from = text.indexOf(`\n${heading}\n`);
  if (from < 0) throw new Error(`${file}: no section ${heading}`);
  const blocks = [...text.slice(from).matchAll(/```(\w*)\n([\s\S]*?)```/g)].filter((m) => m[1] === lang);
  if (!blocks[n]) throw new Error(`${file}: no ${lang || 'plain'} block ${n} in ${heading}`);
  return blocks[n][2]!;
}

/** The files runAsUser keeps for lab `labName` (its `seine` launcher, kubectl's cache): remove them when done. */
export function userShellDirs(labName: string): string[] {
  return [join(TEST_LEDGER_ROOT, `${labName}-bin`), join(TEST_LEDGER_ROOT, `${labName}-kcache`)];
}

/**
 * Runs a doc's shell lines as a user types them (`set -e`): `seine` on PATH, and every `seine lab` command
 * aimed at lab `labName` under the test ledgers (SEINE_LAB_NAME, SEINE_LAB_ROOT), as a user's shell would
 * set them. Returns stdout.
 */
export async function runAsUser(lines: string[], labName: string, timeoutMs = 300_000): Promise<string> {
  const [binDir, kubeCache] = userShellDirs(labName) as [string, string];
  mkdirSync(binDir, { recursive: true });
  writeFileSync(join(binDir, 'seine'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(join(repoRoot(), 'bin', 'seine'))} "$@"\n`, { mode: 0o755 });
  const env = { ...process.env, PATH: `${binDir}:${process.env.PATH ?? ''}`, SEINE_LAB_NAME: labName, SEINE_LAB_ROOT: TEST_LEDGER_ROOT, KUBECACHEDIR: kubeCache };
  const { stdout } = await run('bash', ['-c', `set -e\n${lines.join('\n')}`], { cwd: repoRoot(), env, timeoutMs });
  return stdout;
}
