import { Command } from 'commander';
import { Agent } from '../primary/agent/agent.js';
import { loadAgentConfig } from '../primary/agent/config.js';
import { logger } from '../util/log.js';

/** `seine agent`: the per-node agent (DaemonSet). */
export function agentCommand(): Command {
  return new Command('agent')
    .description('run the node agent: pod network on this node (CNI server, OVS bridge, flows, routes)')
    .requiredOption('--config <file>', 'agent config (YAML)')
    .action(async (o: { config: string }) => {
      const log = logger('agent');
      const agent = new Agent(loadAgentConfig(o.config));
      const stop = (signal: string): void => {
        log.info({ signal }, 'stopping (pods keep their network)');
        void agent.stop().finally(() => process.exit(0));
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      try {
        await agent.start();
      } catch (e) {
        log.fatal({ err: e instanceof Error ? e.stack : String(e) }, 'agent failed to start');
        process.exit(1);
      }
    });
}
