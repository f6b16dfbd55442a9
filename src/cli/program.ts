import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../util/paths.js';
import { agentCommand } from './agent.js';
import { controllerCommand } from './controller.js';
import { getCommand } from './get.js';
import { installCniCommand } from './install-cni.js';
import { labCommand } from './lab.js';
import { traceCommand } from './trace.js';

const pkg = JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version: string };

/** The `seine` program with every subcommand, not yet run (the reference generator reads it too). */
export function buildProgram(): Command {
  return new Command('seine')
    .description('Seine: multi-network Kubernetes CNI on Open vSwitch')
    .version(pkg.version)
    .addCommand(labCommand())
    .addCommand(agentCommand())
    .addCommand(controllerCommand())
    .addCommand(installCniCommand())
    .addCommand(traceCommand())
    .addCommand(getCommand());
}
