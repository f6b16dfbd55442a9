import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ResourceLedger, reapStaleLedgers } from '../../../src/host/ledger.js';
import { OvsDaemons } from '../../../src/ovs/daemons.js';
import { OvsdbClient } from '../../../src/ovs/ovsdb/client.js';
import { OvsdbRequestTimeoutError } from '../../../src/ovs/ovsdb/errors.js';
import { Vswitch } from '../../../src/ovs/ovsdb/vswitch.js';
import { TEST_LEDGER_ROOT } from '../../harness/sandbox.js';
import { freeTcpPort, rejection, sleep } from './helpers.js';

/**
 * The sandbox's daemons live in their own netns, out of reach of this process's 127.0.0.1, so the TCP
 * test runs a lone ovsdb-server (no vswitchd) in this namespace, recorded in a ledger like a sandbox.
 */
describe('TCP transport', () => {
  let ledger: ResourceLedger;
  let ovs: OvsDaemons;
  let port: number;
  let vs: Vswitch | undefined;

  beforeAll(async () => {
    await reapStaleLedgers(TEST_LEDGER_ROOT);
    ledger = ResourceLedger.create(join(TEST_LEDGER_ROOT, `t${randomBytes(3).toString('hex')}`));
    ovs = new OvsDaemons({ rundir: join(ledger.dir, 'ovs'), ledger });
    await ovs.startDatabase();
    port = await freeTcpPort();
    await ovs.appctl('ovsdb-server', ['ovsdb-server/add-remote', `ptcp:${port}:127.0.0.1`]);
  });
  afterAll(async () => {
    await vs?.close();
    await ledger?.release();
  });

  it('transacts and replicates over tcp:127.0.0.1:PORT', async () => {
    vs = await Vswitch.connect({ remote: `tcp:127.0.0.1:${port}`, probeIntervalMs: 0 });
    expect(vs.client.remote).toEqual({ kind: 'tcp', host: '127.0.0.1', port });
    await vs.ensureBridge('brt', { datapathType: 'netdev', externalIds: { via: 'tcp' } });
    const added = await vs.addPort('brt', { name: 'tp0', type: 'internal', externalIds: { via: 'tcp' } }, { waitOfport: false });
    expect(added.port.name).toBe('tp0');
    // Read back through the unix socket, by ovs-vsctl.
    expect((await ovs.vsctl(['list-ports', 'brt'])).trim()).toBe('tp0');
    expect((await ovs.vsctl(['get', 'Bridge', 'brt', 'external_ids:via'])).trim()).toBe('tcp');
    // And a change by ovs-vsctl reaches the TCP client's cache.
    await ovs.vsctl(['--no-wait', 'set', 'Port', 'tp0', 'tag=7']);
    expect((await vs.cache.waitForPort('tp0', (p) => p.tag === 7, { timeoutMs: 5000 })).tag).toBe(7);
  });

  it('answers the server echo probes, so the idle TCP session survives them', async () => {
    // ovsdb-server probes an idle TCP client after 5 s and drops it if the echo is not answered within 5 s
    // more; a second probe only comes after the first was answered and the session went idle again.
    const client = vs!.client;
    const deadline = Date.now() + 20_000;
    while (client.stats.echoRequestsAnswered < 2 && Date.now() < deadline) await sleep(250);
    expect(client.stats.echoRequestsAnswered).toBeGreaterThanOrEqual(2);
    expect(client.stats.disconnects).toBe(0);
    expect(client.stats.connects).toBe(1);
    expect(await client.echo('alive')).toEqual(['alive']);
  }, 30_000);

  it('fails typed when nothing listens within the connect timeout, leaving nothing running', async () => {
    const closedPort = await freeTcpPort();
    const err = await rejection(OvsdbClient.connect({ remote: `tcp:127.0.0.1:${closedPort}`, backoff: { initialMs: 50, maxMs: 100 } }, 500));
    expect(err).toBeInstanceOf(OvsdbRequestTimeoutError);
    expect(err).toMatchObject({ method: 'connect', sent: false });
  });
});
