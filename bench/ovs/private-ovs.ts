// A private OVS for benchmarks: its own network namespace, ovsdb-server and ovs-vswitchd (userspace datapath)
// and one bridge, all recorded in a ledger and removed when the body ends, fails or the process is signalled.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ResourceLedger, reapStaleLedgers } from '../../src/host/ledger.js';
import { createNetns } from '../../src/host/netns.js';
import { OvsDaemons } from '../../src/ovs/daemons.js';

const LEDGER_ROOT = '/run/seine-bench';

export async function withPrivateOvs(bridge: string, body: (ovs: OvsDaemons) => Promise<void>): Promise<void> {
  await reapStaleLedgers(LEDGER_ROOT);
  const id = `b${randomBytes(3).toString('hex')}`;
  const ledger = ResourceLedger.create(join(LEDGER_ROOT, id));
  let released = false;
  const release = async (): Promise<void> => {
    if (released) return;
    released = true;
    await ledger.release();
  };
  const onSignal = (): void => {
    void release().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const nsName = `${id}-node`;
    ledger.netns(nsName);
    const netns = await createNetns(nsName);
    const ovs = new OvsDaemons({ rundir: join(ledger.dir, 'ovs'), netns, ledger });
    await ovs.start();
    await ovs.vsctl(['add-br', bridge, '--', 'set', 'bridge', bridge, 'datapath_type=netdev', 'protocols=OpenFlow15', 'fail_mode=secure']);
    await body(ovs);
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await release();
  }
}
