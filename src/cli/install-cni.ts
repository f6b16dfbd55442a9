import { Command } from 'commander';
import { join } from 'node:path';
import { DEFAULT_AGENT_CONFIG, loadAgentConfig } from '../primary/agent/config.js';
import { installCni, type InstallCniResult } from '../primary/installcni/index.js';
import { repoRoot } from '../util/paths.js';

interface InstallCniFlags {
  config?: string;
  cniConfDir?: string;
  cniBinDir?: string;
  cniSocket?: string;
  pluginSource: string;
  link?: boolean;
  chainPortmap?: boolean;
}

/**
 * `seine install-cni`: the DaemonSet's init container. The directories must be mounted at the same paths as on
 * the host, because the installed plugin refers to its files by absolute path.
 */
export function installCniCommand(hooks: { onDone?: (r: InstallCniResult) => void } = {}): Command {
  return new Command('install-cni')
    .description('install the Seine CNI plugin and conflist on this node (atomic, idempotent)')
    .option('--config <file>', 'agent config (YAML) to take cniConfDir, cniBinDir and cniSocket from')
    .option('--cni-conf-dir <dir>', `where the conflist goes (default: the agent config's, else ${DEFAULT_AGENT_CONFIG.cniConfDir})`)
    .option('--cni-bin-dir <dir>', `where the plugin goes (default: the agent config's, else ${DEFAULT_AGENT_CONFIG.cniBinDir})`)
    .option('--cni-socket <path>', `the agent's CNI socket (default: the agent config's, else ${DEFAULT_AGENT_CONFIG.cniSocket})`)
    .option('--plugin-source <file>', 'the seine-cni launcher of a built Seine tree', join(repoRoot(), 'bin', 'seine-cni'))
    .option('--link', 'symlink the plugin to --plugin-source instead of installing a self-contained copy')
    .option('--chain-portmap', 'chain the portmap plugin (hostPort support); it must be in the CNI bin dir')
    .action(async (o: InstallCniFlags) => {
      // Only the CNI paths matter here, so any node name satisfies the agent config's schema.
      const agent = o.config ? loadAgentConfig(o.config, { ...process.env, NODE_NAME: process.env.NODE_NAME || 'install-cni' }) : DEFAULT_AGENT_CONFIG;
      const result = await installCni({
        confDir: o.cniConfDir ?? agent.cniConfDir,
        binDir: o.cniBinDir ?? agent.cniBinDir,
        socket: o.cniSocket ?? agent.cniSocket,
        pluginSource: o.pluginSource,
        link: o.link ?? false,
        chainPortmap: o.chainPortmap ?? false,
      });
      hooks.onDone?.(result);
    });
}
