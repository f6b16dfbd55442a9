import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { CniError } from '../../../src/cni/errors.js';
import type { CniResult } from '../../../src/cni/types.js';
import type { CniDriver, CniRequest, GcRequest, StatusRequest } from '../../../src/primary/cniserver/types.js';

export interface Deferred<T = void> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

type AnyRequest = CniRequest | GcRequest | StatusRequest;

export interface DriverEvent {
  at: 'start' | 'end';
  command: string;
  containerId?: string;
  ifname?: string;
}

/**
 * A driver whose every call is recorded (start and end) and whose behaviour a test sets per call:
 * `hook` may wait on a gate, throw, or return a result for ADD. By default ADD returns a 1.1.0 result
 * with one interface and 10.244.1.<n>/24, everything else succeeds.
 */
export class TestDriver implements CniDriver {
  readonly events: DriverEvent[] = [];
  readonly requests: AnyRequest[] = [];
  hook: ((req: AnyRequest) => Promise<CniResult | void> | CniResult | void) | undefined;
  private n = 1;

  private async call(req: AnyRequest): Promise<CniResult | void> {
    const id = 'containerId' in req ? { containerId: req.containerId, ifname: req.ifname } : {};
    this.requests.push(req);
    this.events.push({ at: 'start', command: req.command, ...id });
    try {
      return await this.hook?.(req);
    } finally {
      this.events.push({ at: 'end', command: req.command, ...id });
    }
  }

  async add(req: CniRequest): Promise<CniResult> {
    const r = await this.call(req);
    if (r) return r;
    const n = ++this.n;
    return {
      cniVersion: '1.1.0',
      interfaces: [{ name: req.ifname, sandbox: req.netns, mac: '02:00:00:00:00:01', mtu: 1450 }],
      ips: [{ address: `10.244.1.${n}/24`, gateway: '10.244.1.1', interface: 0 }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.244.1.1', mtu: 1450 }],
    };
  }
  async del(req: CniRequest): Promise<void> {
    await this.call(req);
  }
  async check(req: CniRequest): Promise<void> {
    await this.call(req);
  }
  async gc(req: GcRequest): Promise<void> {
    await this.call(req);
  }
  async status(req: StatusRequest): Promise<void> {
    await this.call(req);
  }

  /** Whether any two calls for one container overlapped (from the event log). */
  overlapped(containerId: string): boolean {
    let open = 0;
    for (const e of this.events.filter((x) => x.containerId === containerId)) {
      open += e.at === 'start' ? 1 : -1;
      if (open > 1) return true;
    }
    return false;
  }
}

export const notReady = () => new CniError(50, 'datapath not ready', 'bridge br-int missing');

/**
 * The seine-cni plugin built from this tree's source into `dir` (scripts/build-go.sh, incremental through
 * Go's build cache), so a test never runs a stale dist/bin/seine-cni. Returns the binary's path.
 */
export function buildShim(dir: string): string {
  const bin = join(dir, 'seine-cni');
  execFileSync('bash', [resolve('scripts/build-go.sh'), bin], { stdio: ['ignore', 'ignore', 'inherit'] });
  return bin;
}
