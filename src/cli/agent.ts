import { join } from 'node:path';
import { Command } from 'commander';
import { Agent } from '../agent/agent.js';
import type { AgentFeature } from '../agent/feature.js';
import { loadAgentConfig, type AgentConfig } from '../primary/agent/config.js';
import { PrimaryNetworkFeature } from '../primary/agent/feature.js';
import { SecondaryNetworksFeature } from '../secondary/agent/feature.js';
import { ServiceChainsFeature } from '../chaining/agent/feature.js';
import { NetworkPolicyFeature } from '../policy/agent/feature.js';
import { ServicesFeature } from '../services/agent/feature.js';
import { TraceflowFeature } from '../traceflow/agent/feature.js';
import { ChainedNetworkFeature } from '../chaining/cnimode/feature.js';
import { releaseNode } from '../chaining/cnimode/release.js';
import { useCommandRunner } from '../host/exec.js';
import { ExecHelper } from '../host/exec-helper.js';
import { logger } from '../util/log.js';
import { sharedConnection } from '../ovs/openflow/wire/connection.js';

/** The node's features, in start order: the pod network first (every other one attaches around its eth0). */
export function nodeFeatures(cfg: AgentConfig): AgentFeature[] {
  // Service chains steer through CNF function ports, which the secondary networks feature attaches.
  const secondaryFeature = cfg.secondaryNetworks.enabled ? new SecondaryNetworksFeature() : undefined;
  const secondary = secondaryFeature ? [secondaryFeature] : [];
  const chainsFeature = cfg.secondaryNetworks.enabled && cfg.serviceChains.enabled ? new ServiceChainsFeature() : undefined;
  const chains = chainsFeature ? [chainsFeature] : [];
  // Policy right after the pod network: a new pod's rules are in place before the other features attach more to it.
  const policyFeature = cfg.networkPolicy.enabled ? new NetworkPolicyFeature() : undefined;
  const policy = policyFeature ? [policyFeature] : [];
  const services = cfg.services.enabled ? [new ServicesFeature()] : [];
  // Chained, the primary CNI made the pod's link: Seine takes it over instead of making it.
  const podNetwork = cfg.mode === 'chained' ? new ChainedNetworkFeature() : new PrimaryNetworkFeature();
  // Last: it observes what every other feature's flows do to a packet.
  const traceflow = new TraceflowFeature({
    podInterfaces: () => podNetwork.podInterfaces(),
    ruleOf: (id) => policyFeature?.ruleOf(id),
    chainTarget: (chain, hop, replica) => chainsFeature?.chainTarget(chain, hop, replica),
    ...(secondaryFeature
      ? {
          segments: {
            bridges: () => secondaryFeature.traceBridges?.bridgeNames() ?? [],
            ports: (bridge) => {
              const ports = secondaryFeature.traceBridges?.bridgePorts(bridge);
              const chainTunnel = chainsFeature?.chainTunnelOf(bridge);
              return ports && chainTunnel ? { ...ports, chainTunnel } : ports;
            },
            writer: (bridge) => secondaryFeature.traceBridges!.writer(bridge),
            connection: (bridge) => sharedConnection(join(cfg.ovs.rundir, `${bridge}.mgmt`), bridge),
            ruleOf: (bridge, id) => policyFeature?.secondaryRuleOf(bridge, id),
            chainTarget: (network, chain, hop, replica) => chainsFeature?.chainTarget(chain, hop, replica, network),
          },
        }
      : {}),
  });
  return [podNetwork, ...policy, ...services, ...secondary, ...chains, traceflow];
}

/** `seine agent`: the per-node agent (DaemonSet). */
export function agentCommand(): Command {
  return new Command('agent')
    .description('run the node agent: pod network on this node (CNI server, OVS bridge, flows, routes)')
    .requiredOption('--config <file>', 'agent config (YAML)')
    .option('--release', 'chained mode, agent stopped: give every pod back to the primary CNI and remove Seine from the node, then exit')
    .action(async (o: { config: string; release?: boolean }) => {
      const log = logger('agent');
      const cfg = loadAgentConfig(o.config);
      if (o.release) {
        const report = await releaseNode(cfg);
        process.stdout.write(`gave ${report.pods.length} pod(s) back to the primary CNI${report.strays ? `, removed ${report.strays} leftover(s)` : ''}\n`);
        return;
      }
      const agent = new Agent(cfg, nodeFeatures(cfg));
      // Host commands are forked by seine-exec, not by this process (see src/host/exec-helper.ts).
      const helper = new ExecHelper();
      useCommandRunner(helper);
      const stop = (signal: string): void => {
        log.info({ signal }, 'stopping (pods keep their network)');
        void agent
          .stop()
          .then(() => helper.stop())
          .finally(() => process.exit(0));
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
