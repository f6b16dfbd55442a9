// The userspace datapath's flow cache can outlive a change of the OpenFlow flows it was made from; the agent
// purges it after policy changes. Checked on a real ovs-vswitchd: traffic fills the cache, the purge empties it,
// and traffic goes on (the next packets are translated again).
import { run } from '../../src/host/exec.js';
import { addFlow, FlowWriter } from '../../src/ovs/openflow/index.js';
import { VswitchdControl } from '../../src/ovs/vswitchd-control.js';
import { eventually } from '../../src/util/wait.js';
import { OvsSandbox, type SandboxPod } from '../harness/sandbox.js';

describe('ovs-vswitchd control', () => {
  let sb: OvsSandbox;
  let a: SandboxPod;
  let b: SandboxPod;
  let control: VswitchdControl;
  // The pings' flows (IPv4 and ARP): the namespaces' kernels send IPv6 of their own (neighbour discovery) at any time.
  const cached = async (): Promise<string[]> =>
    (await control.appctl(['dpctl/dump-flows'])).split('\n').filter((l) => l.includes('in_port') && /eth_type\(0x0(800|806)\)/.test(l));
  const ping = (): Promise<unknown> => run('ping', ['-c', '2', '-i', '0.2', '-W', '5', b.addr], { netns: a.netns, timeoutMs: 30_000 });

  beforeAll(async () => {
    sb = await OvsSandbox.start();
    await sb.addBridge('br0');
    a = await sb.addPod('10.77.0.2/24');
    b = await sb.addPod('10.77.0.3/24');
    for (const p of [a, b]) await sb.ovs.vsctl(['add-port', 'br0', p.hostIf]);
    await FlowWriter.forBridge(sb.ovs, 'br0').submit([addFlow({ table: 0, priority: 0, match: {}, actions: [{ type: 'output', port: 'NORMAL' }] })]);
    control = new VswitchdControl(sb.ovs.rundir);
  }, 60_000);

  afterAll(async () => {
    await sb?.close();
  });

  it('purges the datapath flow cache, and traffic goes on', async () => {
    await ping();
    // The cache may be looked at before the pings' flows are in it: a generous wait on a busy machine.
    await eventually('datapath flows cached after the pings', async () => ((await cached()).length ? true : undefined), 10_000, 100);
    await control.purgeDatapathFlows();
    expect(await cached()).toEqual([]);
    await ping();
  }, 60_000);
});
