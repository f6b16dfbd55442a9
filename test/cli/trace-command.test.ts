import { jest } from '@jest/globals';
import { ApiException } from '@kubernetes/client-node';
import { GRACE_SECONDS, runTrace, traceCommand, TraceError, traceSpecFromArgs, type TraceApi, type TraceIO } from '../../src/cli/trace.js';
import type { Traceflow, TraceflowStatus } from '../../src/traceflow/api/types.js';

const spec = traceSpecFromArgs('default/client', 'svc/web', { timeout: '5' });

const notFound = () => new ApiException(404, 'Not Found', JSON.stringify({ kind: 'Status', reason: 'NotFound', message: 'traceflows.crd.seine.dev "x" not found' }), {});

/** An API server holding Traceflows whose status moves through the given steps, one per read. */
function fakeApi(steps: Array<TraceflowStatus | Error>): TraceApi & { objects: Map<string, Traceflow>; created: Traceflow[]; deleted: string[] } {
  const objects = new Map<string, Traceflow>();
  const created: Traceflow[] = [];
  const deleted: string[] = [];
  let i = 0;
  return {
    objects,
    created,
    deleted,
    create: async (body) => {
      const name = body.metadata.name!;
      if (objects.has(name)) throw new ApiException(409, 'Conflict', JSON.stringify({ reason: 'AlreadyExists', message: `traceflows.crd.seine.dev "${name}" already exists` }), {});
      objects.set(name, body);
      created.push(body);
      return body;
    },
    get: async (name) => {
      const tf = objects.get(name);
      if (!tf) throw notFound();
      const step = steps[Math.min(i++, steps.length - 1)]!;
      if (step instanceof Error) throw step;
      tf.status = step;
      return structuredClone(tf);
    },
    delete: async (name) => {
      if (!objects.delete(name)) throw notFound();
      deleted.push(name);
    },
    list: async () => [...objects.values()],
  };
}

function fakeIO(opts: { suffixes?: string[]; signal?: AbortSignal; onSleep?: () => void } = {}): TraceIO & { out: string; err: string; clock: number } {
  const suffixes = [...(opts.suffixes ?? ['abc12'])];
  const io = {
    out: '',
    err: '',
    clock: 0,
    stdout: (t: string) => void (io.out += t),
    stderr: (t: string) => void (io.err += t),
    sleep: async (ms: number, signal?: AbortSignal) => {
      opts.onSleep?.();
      if (signal?.aborted) throw new Error('aborted');
      io.clock += ms;
    },
    now: () => io.clock,
    suffix: () => suffixes.shift() ?? 'zzzzz',
    signal: opts.signal,
    pollMs: 500,
  };
  return io;
}

const succeeded: TraceflowStatus = {
  phase: 'Succeeded',
  tag: 7,
  verdict: 'Delivered',
  packet: { sourceIP: '10.10.0.5', destinationIP: '10.96.0.10', protocol: 'TCP', sourcePort: 40123, destinationPort: 80, ttl: 64 },
  results: [{ node: 'worker-1', role: 'Sender', observations: [{ component: 'Forwarding', action: 'Delivered', pod: 'default/web-1' }] }],
};

describe('runTrace', () => {
  it('creates the trace, reports progress, prints the diagram and deletes it', async () => {
    const api = fakeApi([{ phase: 'Pending' }, { phase: 'Running', tag: 7 }, { phase: 'Running', tag: 7 }, succeeded]);
    const io = fakeIO();
    await expect(runTrace(spec, {}, api, io)).resolves.toBe(0);
    expect(api.created[0]).toMatchObject({ apiVersion: 'crd.seine.dev/v1alpha1', kind: 'Traceflow', metadata: { name: 'trace-abc12' }, spec });
    expect(io.err).toBe('waiting for trace-abc12 ... Pending\nwaiting for trace-abc12 ... Running\n');
    expect(io.out).toBe('default/client -> svc default/web: TCP 10.10.0.5:40123 -> 10.96.0.10:80, DSCP tag 7\nnode worker-1 (Sender)\n└─ Forwarding      Delivered to pod default/web-1\nVerdict: Delivered\n');
    expect(api.deleted).toEqual(['trace-abc12']);
  });

  it('prints the object as json or yaml, keeps it with keep, and exits 1 for a failed trace', async () => {
    const failed: TraceflowStatus = { phase: 'Failed', reason: 'SourceNotFound', message: 'pod default/client not found' };
    const api = fakeApi([failed]);
    const io = fakeIO();
    await expect(runTrace(spec, { output: 'json', keep: true }, api, io)).resolves.toBe(1);
    expect(JSON.parse(io.out)).toMatchObject({ metadata: { name: 'trace-abc12' }, status: failed });
    expect(api.deleted).toEqual([]);
    expect(io.err).toContain('traceflow trace-abc12 kept');

    const io2 = fakeIO({ suffixes: ['def34'] });
    await expect(runTrace(spec, { output: 'yaml' }, fakeApi([failed]), io2)).resolves.toBe(1);
    expect(io2.out).toMatch(/^apiVersion: crd.seine.dev\/v1alpha1\nkind: Traceflow\n/m);
    expect(io2.out).toContain('reason: SourceNotFound');
  });

  it('picks another name when one is taken', async () => {
    const api = fakeApi([succeeded]);
    api.objects.set('trace-abc12', { metadata: { name: 'trace-abc12' }, spec });
    const io = fakeIO({ suffixes: ['abc12', 'xyz89'] });
    await expect(runTrace(spec, {}, api, io)).resolves.toBe(0);
    expect(api.deleted).toEqual(['trace-xyz89']);
    expect(api.objects.has('trace-abc12')).toBe(true);
  });

  it('gives up after the timeout and the grace period, deleting the trace', async () => {
    const api = fakeApi([{ phase: 'Running', message: 'waiting for worker-2' }]);
    const io = fakeIO();
    const run = runTrace(spec, {}, api, io);
    await expect(run).rejects.toThrow(TraceError);
    await expect(run).rejects.toThrow(`traceflow trace-abc12 did not finish in ${5 + GRACE_SECONDS} s (still Running); is the Seine controller running?`);
    expect(io.clock).toBe((5 + GRACE_SECONDS) * 1000);
    expect(io.err.trim().split('\n')).toEqual(['waiting for trace-abc12 ... Pending', 'waiting for trace-abc12 ... Running: waiting for worker-2']);
    expect(api.deleted).toEqual(['trace-abc12']);
  });

  it('rides out failed reads until the deadline', async () => {
    const api = fakeApi([new Error('socket hang up'), succeeded]);
    await expect(runTrace(spec, {}, api, fakeIO())).resolves.toBe(0);
    const stuck = fakeApi([new Error('ECONNREFUSED')]);
    await expect(runTrace(spec, {}, stuck, fakeIO())).rejects.toThrow(/the last read failed: cannot read traceflow trace-abc12: ECONNREFUSED/);
    expect(stuck.deleted).toEqual(['trace-abc12']);
  });

  it('deletes the trace when interrupted', async () => {
    const ac = new AbortController();
    let sleeps = 0;
    const api = fakeApi([{ phase: 'Running' }]);
    const io = fakeIO({ signal: ac.signal, onSleep: () => ++sleeps === 3 && ac.abort() });
    await expect(runTrace(spec, {}, api, io)).resolves.toBe(130);
    expect(io.out).toBe('');
    expect(api.deleted).toEqual(['trace-abc12']);
  });

  it('reports the server refusing the trace', async () => {
    const api = fakeApi([succeeded]);
    api.create = async () => {
      throw new ApiException(404, 'Not Found', JSON.stringify({ kind: 'Status', reason: 'NotFound', message: 'the server could not find the requested resource' }), {});
    };
    const run = runTrace(spec, {}, api, fakeIO());
    await expect(run).rejects.toMatchObject({ fromServer: true, message: 'Error from server (NotFound): the server could not find the requested resource (is the Traceflow CRD, traceflows.crd.seine.dev, installed?)' });
  });

  it('stops when someone else deletes the trace', async () => {
    const api = fakeApi([{ phase: 'Running' }]);
    const io = fakeIO({ onSleep: () => api.objects.clear() });
    await expect(runTrace(spec, {}, api, io)).rejects.toThrow('the traceflow was deleted while waiting for it');
  });
});

describe('seine trace', () => {
  let stderr: jest.SpiedFunction<typeof process.stderr.write>;
  beforeEach(() => {
    stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  });
  afterEach(() => {
    stderr.mockRestore();
    process.exitCode = undefined;
  });

  const run = async (...args: string[]): Promise<string> => {
    // Arguments are checked before the kubeconfig is read: none is needed here.
    await traceCommand().exitOverride().parseAsync(args, { from: 'user' });
    return stderr.mock.calls.map((c) => String(c[0])).join('');
  };

  it('says what is wrong with the arguments in one line and exits 1', async () => {
    expect(await run('default/client', '10.0.0.1', '--protocol', 'ICMP', '--port', '80')).toBe('error: --port is for TCP and UDP: an ICMP packet has no ports\n');
    expect(process.exitCode).toBe(1);
  });

  it('needs both arguments', async () => {
    expect(await run('default/client')).toBe("error: missing required argument 'destination'\n");
    expect(process.exitCode).toBe(1);
  });
});
