import { Command } from 'commander';
import { loadKubeConfig } from '../k8s/kubeconfig.js';
import { Controller } from '../primary/controller/controller.js';
import { loadControllerConfig, parseControllerConfig } from '../primary/controller/config.js';
import { logger } from '../util/log.js';

export interface ControllerCommandHooks {
  /** Stops the controller like SIGTERM does (tests run the command in-process). */
  signal?: AbortSignal;
  /** Called once the controller runs. */
  onStarted?: (controller: Controller) => void;
}

/** `seine controller`: the cluster controller (Deployment; replicas elect a leader). */
export function controllerCommand(hooks: ControllerCommandHooks = {}): Command {
  return new Command('controller')
    .description('run the cluster controller: node pod-CIDR allocation, service chain status and the network policy computation streamed to the agents, with leader election between replicas')
    .option('--config <file>', 'controller config (YAML); defaults apply without one')
    .option('--kubeconfig <file>', 'kubeconfig; default: the config file\'s, $KUBECONFIG, the in-cluster service account, ~/.kube/config')
    .action(async (o: { config?: string; kubeconfig?: string }) => {
      const log = logger('controller');
      const config = o.config ? loadControllerConfig(o.config) : parseControllerConfig(undefined);
      const controller = new Controller({ config, kubeConfig: loadKubeConfig(o.kubeconfig ?? config.kubeconfig) });
      await controller.start();
      hooks.onStarted?.(controller);
      const handlers: Array<[NodeJS.Signals, () => void]> = [];
      const signal = await new Promise<string>((resolve) => {
        for (const sig of ['SIGTERM', 'SIGINT'] as const) {
          const h = (): void => resolve(sig);
          handlers.push([sig, h]);
          process.once(sig, h);
        }
        hooks.signal?.addEventListener('abort', () => resolve('abort'), { once: true });
        if (hooks.signal?.aborted) resolve('abort');
      });
      for (const [sig, h] of handlers) process.off(sig, h);
      log.info({ signal }, 'stopping: the lease is handed over');
      await controller.stop();
    });
}
