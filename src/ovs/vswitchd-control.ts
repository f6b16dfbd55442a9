// ovs-vswitchd's control socket (ovs-appctl) as the agent reaches it: the socket the lab names, else the daemon
// found through its pidfile in the run directory.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../host/exec.js';

export class VswitchdControl {
  constructor(private readonly rundir: string) {}

  async appctl(args: string[], timeoutMs = 10_000): Promise<string> {
    const fixed = join(this.rundir, 'ovs-vswitchd.ctl');
    const { argv, env } = existsSync(fixed)
      ? { argv: ['-t', fixed, ...args], env: process.env }
      : { argv: ['-t', 'ovs-vswitchd', ...args], env: { ...process.env, OVS_RUNDIR: this.rundir } };
    return (await run('ovs-appctl', argv, { env, timeoutMs })).stdout;
  }

  /**
   * Drops every cached datapath flow; the next packet of each flow is translated again from the OpenFlow tables.
   * The userspace datapath sometimes keeps a cached flow's old actions after the OpenFlow flows it came from
   * changed (a verdict that flipped stays flipped for as long as packets keep the cached flow alive).
   */
  async purgeDatapathFlows(): Promise<void> {
    await this.appctl(['revalidator/purge']);
  }
}
