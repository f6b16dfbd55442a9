import { run } from '../../host/exec.js';
import { IpRoute } from '../../host/ip.js';
import { Vswitch } from '../../ovs/ovsdb/index.js';
import type { AgentConfig } from '../../primary/agent/config.js';
import { GATEWAY_PORT } from '../../primary/bridge/bridge.js';
import { CHAINED_OWNER, InterfaceStore } from '../../primary/interfacestore/store.js';
import { returnRoutingRemoval, servicesRulesetRemoval } from '../../services/host/index.js';
import { logger } from '../../util/log.js';
import { removeAwsRules } from './cloud.js';
import { EXT_MOVED_ROUTES, parseMovedRoutes } from './driver.js';
import { ChainedHost } from './host.js';

export interface ReleaseReport {
  /** Pods whose links went back to the primary CNI. */
  pods: string[];
  /** Moved routes and isolations no record claimed, removed too. */
  strays: number;
}

/**
 * Gives a node back to the primary CNI alone (uninstall, with the agent stopped): every taken-over pod gets its
 * veth's routes back and leaves OVS, Seine's host rules (AWS connmark copies, the Service proxy's nft table) go,
 * and the integration bridge with its gateway goes.
 * Pods keep running and keep their network throughout (each route is replaced in place).
 */
export async function releaseNode(cfg: AgentConfig): Promise<ReleaseReport> {
  const log = logger('release');
  if (cfg.mode !== 'chained') throw new Error('only a chained node is given back to its primary CNI (mode: primary owns the pods\' network)');
  const ip = new IpRoute(cfg.hostNetns);
  const host = new ChainedHost(ip, GATEWAY_PORT, cfg.ovs.datapathType === 'netdev');
  const vswitch = await Vswitch.connect({ remote: `unix:${cfg.ovs.dbSocket}` });
  const report: ReleaseReport = { pods: [], strays: 0 };
  try {
    const { store, externalIds } = InterfaceStore.fromOvsdb(vswitch, cfg.ovs.bridge, CHAINED_OWNER);
    for (const itf of store.list()) {
      const routes = parseMovedRoutes(externalIds.get(itf.portName)?.[EXT_MOVED_ROUTES]);
      await host.giveBack(itf.portName, routes, (await ip.link(itf.portName)) !== undefined);
      await vswitch.removePort(itf.portName);
      report.pods.push(`${itf.podNamespace}/${itf.podName}`);
      log.info({ pod: `${itf.podNamespace}/${itf.podName}`, port: itf.portName }, 'pod given back to the primary CNI');
    }
    const strays = await host.removeStrays({ route: () => false, dev: () => false });
    report.strays = strays.routes.length + strays.isolations.length;
    await removeAwsRules(cfg.hostNetns);
    // The Service proxy's node-port translation and masquerade (its routes and neighbours go with the gateway).
    await run('nft', ['-f', '-'], { netns: cfg.hostNetns, input: servicesRulesetRemoval() });
    await ip.applyBestEffort(returnRoutingRemoval());
    // The gateway goes with the bridge, and its address with it.
    await vswitch.deleteBridge(cfg.ovs.bridge);
    log.info({ pods: report.pods.length, strays: report.strays }, 'node given back to the primary CNI');
    return report;
  } finally {
    await vswitch.close();
  }
}
