import { CniError } from '../../src/cni/errors.js';
import { createNetns } from '../../src/host/netns.js';
import { IpBatch, IpRoute } from '../../src/host/ip.js';
import { removeOwnVeth, setUpPodInterface, type PodInterfaceSpec } from '../../src/podif/interface.js';
import { OvsSandbox } from '../harness/sandbox.js';

describe('pod interface setup', () => {
  let sb: OvsSandbox;
  let podNetns: string;
  let n = 0;
  beforeAll(async () => {
    sb = await OvsSandbox.start();
    const name = `${sb.id}-pod`;
    sb.ledger.netns(name);
    podNetns = await createNetns(name);
  });
  afterAll(async () => {
    await sb?.close();
  });

  const spec = (over: Partial<PodInterfaceSpec> = {}): PodInterfaceSpec => ({
    netns: podNetns,
    ifname: `eth${++n}`,
    hostIfname: `${sb.id}h${n}`,
    mac: `02:00:00:00:10:${n.toString(16).padStart(2, '0')}`,
    cidr: `10.30.0.${n + 1}/24`,
    gateway: '10.30.0.1',
    mtu: 1450,
    userspaceDatapath: true,
    ...over,
  });

  it('builds both ends and removes them when a later step fails', async () => {
    const good = spec();
    await setUpPodInterface(sb.ip, good);
    expect((await new IpRoute(podNetns).link(good.ifname))?.address).toBe(good.mac);
    expect((await sb.ip.link(good.hostIfname))?.flags).toContain('UP');
    // A gateway outside the pod's subnet fails the pod-side step; the veth goes with it.
    const bad = spec({ gateway: '192.0.2.1' });
    await expect(setUpPodInterface(sb.ip, bad)).rejects.toThrow(/Nexthop has invalid gateway|unreachable/i);
    expect(await sb.ip.link(bad.hostIfname)).toBeUndefined();
    expect(await new IpRoute(podNetns).link(bad.ifname)).toBeUndefined();
  });

  it('refuses a CNI_NETNS carrying extra iproute2 lines with code 4, runs none of them and leaves nothing', async () => {
    const injected = `${sb.id}inj`;
    // The first extra line would run in the node's namespace; the second fails, which used to leave the
    // veth of the first line behind (host end in the node, pod end in the pod).
    for (const extra of [`link add name ${injected} type bridge`, 'link set dev no-such-dev up']) {
      const s = spec({ netns: `${podNetns}\n${extra}` });
      const err = await setUpPodInterface(sb.ip, s).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CniError);
      expect(err).toMatchObject({ code: 4, msg: 'invalid CNI_NETNS' });
      expect(await sb.ip.link(s.hostIfname)).toBeUndefined();
      expect(await new IpRoute(podNetns).link(s.ifname)).toBeUndefined();
    }
    expect(await sb.ip.link(injected)).toBeUndefined();
  });

  it('refuses an interface name iproute2 cannot take with code 4', async () => {
    const err = await setUpPodInterface(sb.ip, spec({ ifname: 'eth0\nlink del lo' })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 4, msg: 'invalid CNI_IFNAME' });
  });

  it("after a failed veth step, removes the veth only when it carries this attempt's MACs", async () => {
    const s = spec();
    const hostMac = '02:00:00:00:20:01';
    const pod = new IpRoute(podNetns);
    // What the step may have left: both ends, made with the attempt's MACs.
    await sb.ip.apply(new IpBatch().addVeth(s.hostIfname, s.ifname, { peerNetns: podNetns, mac: hostMac, peerMac: s.mac }));
    await removeOwnVeth(sb.ip, s, hostMac);
    expect(await sb.ip.link(s.hostIfname)).toBeUndefined();
    expect(await pod.link(s.ifname)).toBeUndefined();
    // Only the pod end is recognisably ours (the host name was taken by another veth): it goes, both ends with it.
    await sb.ip.apply(new IpBatch().addVeth(s.hostIfname, s.ifname, { peerNetns: podNetns, peerMac: s.mac }));
    await removeOwnVeth(sb.ip, s, hostMac);
    expect(await pod.link(s.ifname)).toBeUndefined();
    expect(await sb.ip.link(s.hostIfname)).toBeUndefined();
    // Links of those names that were there before (other MACs) stay.
    await sb.ip.apply(new IpBatch().addVeth(s.hostIfname, s.ifname, { peerNetns: podNetns, peerMac: '02:00:00:00:20:99' }));
    await removeOwnVeth(sb.ip, s, hostMac);
    expect(await sb.ip.link(s.hostIfname)).toBeDefined();
    expect(await pod.link(s.ifname)).toBeDefined();
    await sb.ip.apply(new IpBatch().delLink(s.hostIfname));
  });
});
