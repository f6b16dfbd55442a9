// One agent's IPPoolAllocator for the secondary benchmark, in a thread of its own: agents are processes of their
// own, each with its own event loop, while the lab's API server runs in the benchmark's. The main thread says
// when to allocate and when to release; each phase ends with the allocator's counters.
import '../primary/quiet.js';
import { KubeConfig } from '@kubernetes/client-node';
import { parentPort, workerData } from 'node:worker_threads';
import { IPPoolAllocator } from '../../src/secondary/ippool/index.js';

export interface AllocatorJob {
  kubeconfig: string;
  pool: string;
  /** Which allocator (agent) this is. */
  index: number;
  run: number;
  /** Allocations this allocator makes, with `inFlight` outstanding. */
  count: number;
  inFlight: number;
}
export type AllocatorPhase = 'allocate' | 'release';
export type AllocatorReport = { phase: 'ready' } | { phase: AllocatorPhase; stats: IPPoolAllocator['stats'] } | { phase: 'failed'; error: string };

const job = workerData as AllocatorJob;
const port = parentPort!;
const kc = new KubeConfig();
kc.loadFromFile(job.kubeconfig);
const allocator = new IPPoolAllocator({ kubeConfig: kc });
const owner = (i: number): { podNamespace: string; podName: string; containerID: string; interface: string; node: string } => ({
  podNamespace: 'bench',
  podName: `p${job.index}-${i}`,
  containerID: `c${job.run}-${job.index}-${i}`,
  interface: 'net1',
  node: `node${job.index}`,
});

/** Works through the allocator's share with `inFlight` requests outstanding. */
async function drive(fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: job.inFlight }, async () => {
      while (next < job.count) await fn(next++);
    }),
  );
}

port.on('message', (phase: AllocatorPhase) => {
  const work = phase === 'allocate' ? drive((i) => allocator.allocate([job.pool], owner(i))) : drive((i) => allocator.release({ containerID: owner(i).containerID, interface: 'net1' }, [job.pool]));
  work.then(
    () => port.postMessage({ phase, stats: { ...allocator.stats } } satisfies AllocatorReport),
    (e: unknown) => port.postMessage({ phase: 'failed', error: e instanceof Error ? e.message : String(e) } satisfies AllocatorReport),
  );
});
port.postMessage({ phase: 'ready' } satisfies AllocatorReport);
