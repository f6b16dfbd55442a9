import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../util/paths.js';

const pkg = JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version: string };

/**
 * Each subcommand's module, loaded only when needed: a process runs one subcommand, and an agent, a
 * controller or install-cni has no use for the lab's API server or the trace renderer (loading every module
 * costs each node process about a second of CPU).
 */
const SUBCOMMANDS: ReadonlyArray<readonly [string, () => Promise<Command>]> = [
  ['lab', async () => (await import('./lab.js')).labCommand()],
  ['agent', async () => (await import('./agent.js')).agentCommand()],
  ['controller', async () => (await import('./controller.js')).controllerCommand()],
  ['install-cni', async () => (await import('./install-cni.js')).installCniCommand()],
  ['trace', async () => (await import('./trace.js')).traceCommand()],
  ['get', async () => (await import('./get.js')).getCommand()],
];

/**
 * The `seine` program, not yet run: with `only`, just that subcommand (when it is one); otherwise every
 * subcommand (for help, unknown commands and the reference generator).
 */
export async function buildProgram(only?: string): Promise<Command> {
  const program = new Command('seine').description('Seine: multi-network Kubernetes CNI on Open vSwitch').version(pkg.version);
  const wanted = SUBCOMMANDS.some(([name]) => name === only) ? SUBCOMMANDS.filter(([name]) => name === only) : SUBCOMMANDS;
  for (const [, load] of wanted) program.addCommand(await load());
  return program;
}

/** The subcommand an argument vector (as process.argv) runs: its first argument, unless that is an option. */
export function subcommandOf(argv: readonly string[]): string | undefined {
  const first = argv[2];
  return first && !first.startsWith('-') ? first : undefined;
}
