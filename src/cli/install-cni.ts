import { Command, InvalidArgumentError } from 'commander';
import { ChainedCniInstaller, removeSeineConf, type ChainedCniStatus } from '../chaining/cnimode/install.js';
import { SEINE_CNI_BINARY } from '../cni/plugin-binary.js';
import { DEFAULT_AGENT_CONFIG, loadAgentConfig, type AgentConfig } from '../primary/agent/config.js';
import { CONFLIST_NAME, installCni, type InstallCniResult } from '../primary/installcni/index.js';
import { logger } from '../util/log.js';

interface InstallCniFlags {
  config?: string;
  mode?: AgentConfig['mode'];
  cniConfDir?: string;
  cniBinDir?: string;
  cniSocket?: string;
  pluginSource: string;
  link?: boolean;
  chainPortmap?: boolean;
  watch?: boolean;
  wait: number;
  uninstall?: boolean;
}

const DEFAULT_WAIT_SECONDS = 60;

function parseMode(v: string): AgentConfig['mode'] {
  if (v !== 'primary' && v !== 'chained') throw new InvalidArgumentError('must be primary or chained');
  return v;
}

function parseSeconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('must be a number of seconds, 0 or more');
  return n;
}

/** Resolves on the first SIGTERM or SIGINT (a DaemonSet's container being stopped). */
function untilSignalled(): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const onSignal = (): void => ac.abort();
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  return {
    signal: ac.signal,
    dispose: () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    },
  };
}

/**
 * `seine install-cni`: in primary mode the DaemonSet's init container (plugin and `10-seine.conflist`); in chained
 * mode the plugin and `05-seine.conflist` derived from the cloud CNI's conflist, kept derived with `--watch` until
 * SIGTERM/SIGINT (the file stays). The plugin is a copy of the static seine-cni binary (with --link, a symlink to
 * it, for a host that has the build).
 */
export function installCniCommand(hooks: { onDone?: (r: InstallCniResult) => void; onChained?: (s: ChainedCniStatus) => void; onUninstalled?: (removed: string[]) => void } = {}): Command {
  return new Command('install-cni')
    .description('install the Seine CNI plugin and conflist on this node (atomic, idempotent)')
    .option('--config <file>', 'agent config (YAML) to take mode, cniConfDir, cniBinDir and cniSocket from')
    .option('--mode <mode>', "primary (Seine's own network) or chained (after the cloud's CNI); default: the agent config's, else primary", parseMode)
    .option('--cni-conf-dir <dir>', `where the conflist goes (default: the agent config's, else ${DEFAULT_AGENT_CONFIG.cniConfDir})`)
    .option('--cni-bin-dir <dir>', `where the plugin goes (default: the agent config's, else ${DEFAULT_AGENT_CONFIG.cniBinDir})`)
    .option('--cni-socket <path>', `the agent's CNI socket (default: the agent config's, else ${DEFAULT_AGENT_CONFIG.cniSocket})`)
    .option('--plugin-source <file>', "the seine-cni plugin binary (a build's dist/bin/seine-cni)", SEINE_CNI_BINARY)
    .option('--link', 'symlink the plugin to --plugin-source instead of copying it')
    .option('--chain-portmap', 'primary mode: chain the portmap plugin (hostPort support); it must be in the CNI bin dir')
    .option('--watch', "chained mode: keep the conflist derived from the cloud CNI's until SIGTERM/SIGINT")
    .option('--wait <seconds>', "chained mode without --watch: how long to wait for a usable cloud CNI conflist", parseSeconds, DEFAULT_WAIT_SECONDS)
    .option('--uninstall', "remove Seine's conflist of the mode (the plugin and other networks' files stay)")
    .action(async (o: InstallCniFlags) => {
      // Only the mode and the CNI paths matter here, so any node name satisfies the agent config's schema.
      const agent = o.config ? loadAgentConfig(o.config, { ...process.env, NODE_NAME: process.env.NODE_NAME || 'install-cni' }) : DEFAULT_AGENT_CONFIG;
      const mode = o.mode ?? (o.config ? agent.mode : 'primary');
      const confDir = o.cniConfDir ?? agent.cniConfDir;
      const socket = o.cniSocket ?? agent.cniSocket;
      if (mode === 'primary' && o.watch) throw new Error('--watch applies to chained mode only (primary mode writes a fixed conflist once)');
      if (mode === 'chained' && o.chainPortmap) throw new Error("--chain-portmap applies to primary mode only (chained mode keeps the cloud CNI's plugins, portmap included)");

      if (o.uninstall) {
        const removed = mode === 'chained' ? await new ChainedCniInstaller({ confDir, socket }).uninstall() : await removeSeineConf(confDir, CONFLIST_NAME);
        if (mode === 'primary') logger('install-cni').info({ confDir, removed }, 'Seine CNI uninstalled');
        hooks.onUninstalled?.(removed);
        return;
      }
      const plugin = { binDir: o.cniBinDir ?? agent.cniBinDir, pluginSource: o.pluginSource, link: o.link ?? false };
      if (mode === 'primary') {
        const result = await installCni({ confDir, socket, ...plugin, chainPortmap: o.chainPortmap ?? false });
        hooks.onDone?.(result);
        return;
      }
      const installer = new ChainedCniInstaller({ confDir, socket, plugin });
      if (!o.watch) {
        const status = await installer.start({ waitMs: o.wait * 1000 });
        await installer.stop();
        hooks.onChained?.(status);
        return;
      }
      const stopping = untilSignalled();
      try {
        const status = await installer.start({ signal: stopping.signal });
        hooks.onChained?.(status);
        if (!stopping.signal.aborted) await new Promise((resolve) => stopping.signal.addEventListener('abort', resolve, { once: true }));
      } catch (e) {
        // Stopped while still waiting for the cloud's conflist: a normal end of the container.
        if (!stopping.signal.aborted) throw e;
      } finally {
        stopping.dispose();
        await installer.stop();
      }
    });
}
