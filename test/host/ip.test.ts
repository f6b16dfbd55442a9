import { existsSync } from 'node:fs';
import { CommandError, run } from '../../src/host/exec.js';
import { IpBatch, isolateFromHostStackCommand, STEP_EXIT_BASE, sysctlCommand, txOffloadOffCommand, UnsafeArgumentError } from '../../src/host/ip.js';
import { netnsExists } from '../../src/host/netns.js';
import { isAlive, processRef } from '../../src/host/ledger.js';
import { OvsSandbox } from '../harness/sandbox.js';

describe('host commands in namespaces', () => {
  let sb: OvsSandbox;
  beforeAll(async () => {
    sb = await OvsSandbox.start();
  });
  afterAll(async () => {
    await sb?.close();
  });

  it('creates a veth with its peer placed straight into a pod netns, with MTU and MAC', async () => {
    const pod = await sb.addPod('10.9.0.2/24');
    const eth0 = await pod.ip.link('eth0');
    expect(eth0?.address).toBe(pod.mac);
    await sb.ip.apply(new IpBatch().setLink(pod.hostIf, { mtu: 1400 }));
    await pod.ip.apply(new IpBatch().setLink('eth0', { mtu: 1400 }).replaceRoute('10.99.0.0/16', { via: '10.9.0.1' }));
    expect((await sb.ip.link(pod.hostIf))?.mtu).toBe(1400);
    expect((await pod.ip.link('eth0'))?.mtu).toBe(1400);
    const routes = await pod.ip.routes();
    expect(routes).toContainEqual(expect.objectContaining({ dst: '10.99.0.0/16', gateway: '10.9.0.1', dev: 'eth0' }));
    const addrs = await pod.ip.addrs('eth0');
    expect(addrs[0]?.addr_info).toContainEqual(expect.objectContaining({ local: '10.9.0.2', prefixlen: 24 }));
    // TX offload was turned off by the harness.
    const { stdout } = await run('ethtool', ['-k', 'eth0'], { netns: pod.netns });
    expect(stdout).toMatch(/tx-checksumming: off/);
  });

  it('reports the failing command and its stderr', async () => {
    const err = await sb.ip.apply(new IpBatch().setLink('no-such-dev', { up: true })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect((err as CommandError).argv).toContain('nsenter');
    expect((err as CommandError).message).toMatch(/no-such-dev|Cannot find device/);
  });

  it('runs a batch and its follow-up commands in one namespace entry, stopping at the first failure', async () => {
    const pod = await sb.addPod('10.9.0.3/24');
    await pod.ip.apply(new IpBatch().setLink('eth0', { mtu: 1300 }), txOffloadOffCommand('eth0'), isolateFromHostStackCommand('eth0'));
    expect((await pod.ip.link('eth0'))?.mtu).toBe(1300);
    expect((await run('sysctl', ['-n', 'net.ipv4.conf.eth0.arp_ignore'], { netns: pod.netns })).stdout.trim()).toBe('8');
    // Words reach the command unsplit and unexpanded.
    const odd = "it's $HOME; `x`";
    await pod.ip.apply(new IpBatch(), ['ip', 'link', 'set', 'eth0', 'alias', odd]);
    const [link] = JSON.parse((await run('ip', ['-json', 'link', 'show', 'eth0'], { netns: pod.netns })).stdout) as Array<{ ifalias?: string }>;
    expect(link?.ifalias).toBe(odd);
    // A failing batch line stops everything after it; a failing follow-up is reported with its stderr.
    const err = await pod.ip.apply(new IpBatch().setLink('no-such-dev', { up: true }), ['ip', 'link', 'set', 'eth0', 'mtu', '1200']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect((await pod.ip.link('eth0'))?.mtu).toBe(1300);
    const err2 = await pod.ip.apply(new IpBatch().setLink('eth0', { mtu: 1250 }), ['ethtool', '-K', 'no-such-dev', 'tx', 'off'], ['ip', 'link', 'set', 'eth0', 'mtu', '1200']).catch((e: unknown) => e);
    expect((err2 as CommandError).message).toMatch(/ethtool' '-K' 'no-such-dev'.*No such device/s);
    expect((await pod.ip.link('eth0'))?.mtu).toBe(1250);
  });

  it('applies steps in several namespaces in one process, in order; a failure stops the rest and names its step', async () => {
    const pod = await sb.addPod('10.9.0.4/24');
    const odd = "it's $HOME; `x`";
    // Host step, pod step (with a follow-up whose words need quoting twice: nsenter's sh and the outer one), host step.
    await sb.ip.applySteps([
      { batch: new IpBatch().setLink(pod.hostIf, { mtu: 1280 }) },
      { netns: pod.netns, batch: new IpBatch().setLink('eth0', { mtu: 1280 }), followUps: [['ip', 'link', 'set', 'eth0', 'alias', odd]] },
      { batch: new IpBatch(), followUps: [['ip', 'link', 'set', pod.hostIf, 'alias', odd]] },
    ]);
    expect((await sb.ip.link(pod.hostIf))?.mtu).toBe(1280);
    expect((await pod.ip.link('eth0'))?.mtu).toBe(1280);
    for (const [netns, dev] of [[pod.netns, 'eth0'], [sb.ip.netns, pod.hostIf]] as const) {
      const [link] = JSON.parse((await run('ip', ['-json', 'link', 'show', dev], { netns })).stdout) as Array<{ ifalias?: string }>;
      expect(link?.ifalias).toBe(odd);
    }
    // The pod step fails: the exit code says which, its stderr is reported, the last step never runs.
    const err = await sb.ip
      .applySteps([{ batch: new IpBatch().setLink(pod.hostIf, { mtu: 1300 }) }, { netns: pod.netns, batch: new IpBatch().setLink('no-such-dev', { up: true }) }, { batch: new IpBatch().setLink(pod.hostIf, { mtu: 1400 }) }])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect((err as CommandError).exitCode).toBe(STEP_EXIT_BASE + 1);
    expect((err as CommandError).stderr).toMatch(/no-such-dev|Cannot find device/);
    expect((await sb.ip.link(pod.hostIf))?.mtu).toBe(1300);
    // A failing batch in a step of this namespace stops its follow-ups too.
    const err2 = await sb.ip.applySteps([{ batch: new IpBatch().setLink('no-such-dev', { up: true }), followUps: [['ip', 'link', 'set', pod.hostIf, 'mtu', '1350']] }]).catch((e: unknown) => e);
    expect((err2 as CommandError).exitCode).toBe(STEP_EXIT_BASE);
    expect((await sb.ip.link(pod.hostIf))?.mtu).toBe(1300);
  });

  it('writes a step\'s sysctls in the namespace the step runs in; an unknown key fails its step', async () => {
    const pod = await sb.addPod('10.9.0.6/24');
    const read = async (netns: string | undefined, key: string): Promise<string> => (await run('cat', [`/proc/sys/${key}`], { netns })).stdout.trim();
    await sb.ip.applySteps([
      { netns: pod.netns, batch: new IpBatch(), followUps: [sysctlCommand({ 'net.ipv4.conf.eth0.arp_ignore': 2, 'net.ipv4.conf.eth0.rp_filter': 2 })] },
      { batch: new IpBatch(), followUps: [isolateFromHostStackCommand(pod.hostIf)] },
    ]);
    expect([await read(pod.netns, 'net/ipv4/conf/eth0/arp_ignore'), await read(pod.netns, 'net/ipv4/conf/eth0/rp_filter')]).toEqual(['2', '2']);
    expect([await read(sb.netns, `net/ipv4/conf/${pod.hostIf}/arp_ignore`), await read(sb.netns, `net/ipv6/conf/${pod.hostIf}/disable_ipv6`)]).toEqual(['8', '1']);
    // The other namespace's files were left alone.
    expect(await read(sb.netns, 'net/ipv4/conf/all/arp_ignore')).toBe('0');
    const err = await sb.ip
      .applySteps([{ batch: new IpBatch(), followUps: [sysctlCommand({ 'net.ipv4.conf.no-such-dev.arp_ignore': 1 })] }, { batch: new IpBatch().setLink(pod.hostIf, { mtu: 1310 }) }])
      .catch((e: unknown) => e);
    expect((err as CommandError).exitCode).toBe(STEP_EXIT_BASE);
    expect((await sb.ip.link(pod.hostIf))?.mtu).not.toBe(1310);
  });

  it('delVeth deletes a veth, and leaves a link of another kind or none', async () => {
    const pod = await sb.addPod('10.9.0.5/24');
    await sb.ip.apply(new IpBatch().addLink('sbr0', 'bridge'));
    await sb.ip.delVeth('sbr0');
    await sb.ip.delVeth('no-such-dev');
    expect(await sb.ip.link('sbr0')).toBeDefined();
    await sb.ip.delVeth(pod.hostIf);
    expect(await sb.ip.link(pod.hostIf)).toBeUndefined();
    expect(await pod.ip.link('eth0')).toBeUndefined();
    await sb.ip.apply(new IpBatch().delLink('sbr0'));
  });

  it('batch words reach iproute2 exactly as given, quoted where its reader would split them', async () => {
    const pod = await sb.addPod('10.9.0.4/24');
    for (const alias of ['a b', "'lead", '"lead', 'tail\\', "q'x y", 'x\\y', "it's"]) {
      await pod.ip.apply(new IpBatch().command('link', 'set', 'dev', 'eth0', 'alias', alias));
      const [link] = JSON.parse((await run('ip', ['-json', 'link', 'show', 'eth0'], { netns: pod.netns })).stdout) as Array<{ ifalias?: string }>;
      expect(link?.ifalias).toBe(alias);
    }
  });

  it('a netns path carrying another batch line is refused and nothing runs', async () => {
    const pod = await sb.addPod('10.9.0.5/24');
    const injected = `${sb.id}inj`;
    for (const tail of [`\nlink add name ${injected} type bridge`, ` # comment`, `\rlink add name ${injected} type bridge`]) {
      const attempt = (async () => sb.ip.apply(new IpBatch().addVeth(`${sb.id}v`, 'eth1', { peerNetns: `${pod.netns}${tail}` })))();
      await expect(attempt).rejects.toThrow(UnsafeArgumentError);
    }
    expect(await sb.ip.link(injected)).toBeUndefined();
    expect(await sb.ip.link(`${sb.id}v`)).toBeUndefined();
    expect(await pod.ip.link('eth1')).toBeUndefined();
  });

  it('link() returns undefined for a missing device', async () => {
    expect(await sb.ip.link('nope0')).toBeUndefined();
  });

  it('sets per-namespace sysctls', async () => {
    await sb.ip.sysctl({ 'net.ipv4.ip_forward': 1 });
    const { stdout } = await run('sysctl', ['-n', 'net.ipv4.ip_forward'], { netns: sb.netns });
    expect(stdout.trim()).toBe('1');
  });

  it('a ledger release removes every namespace and daemon it recorded', async () => {
    const other = await OvsSandbox.start();
    const pod = await other.addPod('10.8.0.2/24');
    const pid = other.ovs.pid('ovs-vswitchd');
    expect(pid).toBeDefined();
    const vswitchd = processRef(pid!, 'ovs-vswitchd');
    expect(isAlive(vswitchd)).toBe(true);
    await other.close();
    expect(netnsExists(other.netns)).toBe(false);
    expect(netnsExists(pod.netns)).toBe(false);
    // Not running any more (a zombie awaiting its reaper counts as gone).
    expect(isAlive(vswitchd)).toBe(false);
    expect(existsSync(other.ledger.dir)).toBe(false);
  });
});
