// The agent's composition of a pod's CNI calls (pure logic): the pod network answers, hooks act around its
// eth0 in feature order on ADD and in reverse order on DEL, a failing hook undoes the rest, GC hands each
// hook the sandboxes of the network it names, and the reconciler sees the hooks' sandboxes too.
import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import type { PodAttachment, PodAttachmentHook, PodNetwork } from '../../src/agent/feature.js';
import { PodDriver } from '../../src/agent/pod-driver.js';
import { CniError } from '../../src/cni/errors.js';
import type { CniRequest, GcRequest } from '../../src/primary/cniserver/index.js';

const POD: V1Pod = { metadata: { namespace: 'ns', name: 'p', uid: 'u1' } };

function request(containerId: string, ifname = 'eth0'): CniRequest {
  return {
    command: 'ADD',
    cniVersion: '1.0.0',
    config: { cniVersion: '1.0.0', name: 'seine', type: 'seine' },
    cniPath: ['/opt/cni/bin'],
    signal: new AbortController().signal,
    containerId,
    netns: '/proc/self/ns/net',
    ifname,
    pod: { namespace: 'ns', name: 'p', uid: 'u1' },
    args: '',
    argPairs: [],
    capabilityArgs: {},
  };
}

/** A pod network that records its calls and keeps its attachments in memory. */
class FakeNetwork implements PodNetwork {
  readonly defaultNetwork = 'seine';
  readonly list: PodAttachment[] = [];
  constructor(private readonly calls: string[]) {}
  async add(req: CniRequest) {
    this.calls.push(`net.add ${req.containerId}/${req.ifname}`);
    this.list.push({ containerId: req.containerId, ifname: req.ifname, netns: req.netns, podNamespace: 'ns', podName: 'p', podUid: 'u1', network: req.config.name });
    return { cniVersion: '1.0.0', ips: [{ address: '10.244.1.5/24' }] };
  }
  async del(req: CniRequest) {
    this.calls.push(`net.del ${req.containerId}/${req.ifname}`);
    this.list.splice(0, this.list.length, ...this.list.filter((a) => !(a.containerId === req.containerId && a.ifname === req.ifname)));
  }
  async check() {}
  async gc(req: GcRequest) {
    this.calls.push(`net.gc ${req.config.name}`);
    this.list.splice(0, this.list.length);
  }
  async status() {}
  attachments() {
    return this.list;
  }
  resultOf(containerId: string, ifname: string, cniVersion: string) {
    return this.list.some((a) => a.containerId === containerId && a.ifname === ifname) ? { cniVersion } : undefined;
  }
  async releaseSandbox(containerId: string) {
    this.calls.push(`net.release ${containerId}`);
  }
}

function hook(name: string, calls: string[], opts: { failAdd?: boolean; sandboxes?: string[]; gcCollects?: string[] } = {}): PodAttachmentHook {
  return {
    async afterAdd(sb) {
      calls.push(`${name}.afterAdd ${sb.containerId} pod=${sb.pod.metadata?.name} primary=${sb.primary.ips?.[0]?.address}`);
      if (opts.failAdd) throw new CniError(7, `${name} refused`);
    },
    async beforeDel(containerId) {
      calls.push(`${name}.beforeDel ${containerId}`);
    },
    async gc(collect) {
      calls.push(`${name}.gc ${(opts.gcCollects ?? []).filter(collect).join(',')}`);
    },
    sandboxes: () => (opts.sandboxes ?? []).map((containerId) => ({ containerId, netns: `/run/netns/${containerId}`, podUid: '' })),
  };
}

/** A hook that makes its interfaces alongside eth0 (and publishes them after it). */
function alongsideHook(name: string, calls: string[], opts: { fail?: boolean; started?: () => void } = {}): PodAttachmentHook {
  return {
    async alongsideAdd(sb) {
      calls.push(`${name}.alongside ${sb.containerId} pod=${sb.pod.metadata?.name}`);
      opts.started?.();
      if (opts.fail) throw new CniError(7, `${name} refused`);
    },
    async afterAdd(sb) {
      calls.push(`${name}.afterAdd ${sb.containerId} primary=${sb.primary.ips?.[0]?.address}`);
    },
    async beforeDel(containerId) {
      calls.push(`${name}.beforeDel ${containerId}`);
    },
  };
}

/** A pod network whose ADD waits until `release` is called. */
class SlowNetwork extends FakeNetwork {
  private gate: Promise<void>;
  release!: () => void;
  constructor(calls: string[], private readonly fail = false) {
    super(calls);
    this.gate = new Promise((r) => (this.release = r));
  }
  override async add(req: CniRequest) {
    await this.gate;
    if (this.fail) throw new CniError(11, 'no address left');
    return super.add(req);
  }
}

function driver(network: PodNetwork, hooks: PodAttachmentHook[]): PodDriver {
  const core = { readNamespacedPod: () => Promise.reject(new Error('the informer has the pod')) } as unknown as CoreV1Api;
  return new PodDriver({ network, hooks, core, cachedPod: () => POD, cniPath: ['/opt/cni/bin'] });
}

describe('agent pod driver: the pod network and its hooks', () => {
  it('runs the hooks after the pod network on ADD and before it, in reverse, on DEL', async () => {
    const calls: string[] = [];
    const d = driver(new FakeNetwork(calls), [hook('a', calls), hook('b', calls)]);
    await d.add(request('c1'));
    await d.del(request('c1'));
    expect(calls).toEqual(['net.add c1/eth0', 'a.afterAdd c1 pod=p primary=10.244.1.5/24', 'b.afterAdd c1 pod=p primary=10.244.1.5/24', 'b.beforeDel c1', 'a.beforeDel c1', 'net.del c1/eth0']);
  });

  it("runs a hook's alongsideAdd while the pod network makes eth0, its afterAdd after, and undoes both sides on a failure of either", async () => {
    const calls: string[] = [];
    const slow = new SlowNetwork(calls);
    // eth0 is released only once the hook has started: the two run side by side (else this never resolves).
    const d = driver(slow, [alongsideHook('s', calls, { started: () => slow.release() }), hook('p', calls)]);
    await d.add(request('c1'));
    expect(calls).toEqual(['s.alongside c1 pod=p', 'net.add c1/eth0', 's.afterAdd c1 primary=10.244.1.5/24', 'p.afterAdd c1 pod=p primary=10.244.1.5/24']);

    calls.length = 0;
    const failing = new SlowNetwork(calls);
    const d2 = driver(failing, [alongsideHook('s', calls, { fail: true, started: () => failing.release() }), hook('p', calls)]);
    await expect(d2.add(request('c2'))).rejects.toThrow('s refused');
    // The hook that failed undid its own; eth0, made meanwhile, is removed.
    expect(calls).toEqual(['s.alongside c2 pod=p', 'net.add c2/eth0', 'net.del c2/eth0']);

    calls.length = 0;
    const broken = new SlowNetwork(calls, true);
    const d3 = driver(broken, [alongsideHook('s', calls, { started: () => broken.release() })]);
    await expect(d3.add(request('c3'))).rejects.toThrow('no address left');
    expect(calls).toEqual(['s.alongside c3 pod=p', 's.beforeDel c3']);
  });

  it('leaves the hooks out of a chained call for another interface', async () => {
    const calls: string[] = [];
    const d = driver(new FakeNetwork(calls), [hook('a', calls)]);
    await d.add(request('c1', 'net1'));
    await d.del(request('c1', 'net1'));
    expect(calls).toEqual(['net.add c1/net1', 'net.del c1/net1']);
  });

  it('undoes the earlier hooks and the pod network when a hook fails, and fails with its error', async () => {
    const calls: string[] = [];
    const d = driver(new FakeNetwork(calls), [hook('a', calls), hook('b', calls, { failAdd: true }), hook('c', calls)]);
    await expect(d.add(request('c1'))).rejects.toThrow('b refused');
    expect(calls).toEqual(['net.add c1/eth0', 'a.afterAdd c1 pod=p primary=10.244.1.5/24', 'b.afterAdd c1 pod=p primary=10.244.1.5/24', 'a.beforeDel c1', 'net.del c1/eth0']);
  });

  it('hands every hook the sandboxes of the network GC names, judged before the pod network removed them', async () => {
    const calls: string[] = [];
    const network = new FakeNetwork(calls);
    const d = driver(network, [hook('a', calls, { gcCollects: ['c1', 'c2', 'orphan'] })]);
    await d.add(request('c1'));
    await d.add({ ...request('c2'), config: { cniVersion: '1.0.0', name: 'other', type: 'seine' } });
    calls.length = 0;
    await d.gc({ command: 'GC', cniVersion: '1.1.0', config: { cniVersion: '1.1.0', name: 'seine', type: 'seine' }, cniPath: [], signal: new AbortController().signal, validAttachments: [] });
    // c1 is of the named network, c2 of another; a sandbox without eth0 belongs to the default network.
    expect(calls).toEqual(['net.gc seine', 'a.gc c1,orphan']);
  });

  it('lists the pod network sandboxes and the hooks\' others, and releases a sandbox hooks first', async () => {
    const calls: string[] = [];
    const d = driver(new FakeNetwork(calls), [hook('a', calls, { sandboxes: ['c1', 'h1'] })]);
    await d.add(request('c1'));
    expect([...d.sandboxes().values()].map((s) => `${s.containerId}:${s.pod ?? '-'}`)).toEqual(['c1:ns/p', 'h1:-']);
    expect(d.runningSandboxes(POD).map((s) => s.containerId)).toEqual(['c1']);
    calls.length = 0;
    await d.releaseSandbox('h1');
    expect(calls).toEqual(['a.beforeDel h1', 'net.release h1']);
  });
});
