// Writing a Traceflow's status: the controller and every agent on the packet's path write to it, so each write reads
// the object, changes its status and replaces it; a conflict (someone wrote in between) reads it again.
import type { CustomObjectsApi } from '@kubernetes/client-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { isConflict, isNotFound, unlessNotFound } from '../../k8s/api.js';
import { TRACEFLOW_GROUP, TRACEFLOW_PLURAL, TRACEFLOW_VERSION, type Traceflow, type TraceflowStatus } from './types.js';

const MAX_ATTEMPTS = 20;

/**
 * Applies `change` to the trace's current status and writes it. `change` returns the new status, or undefined to
 * write nothing (the status already says it, or the trace moved on). Resolves to the object written, or undefined
 * when nothing was written or the trace is gone.
 */
export async function updateTraceStatus(api: CustomObjectsApi, name: string, change: (tf: Traceflow) => TraceflowStatus | undefined): Promise<Traceflow | undefined> {
  const ref = { group: TRACEFLOW_GROUP, version: TRACEFLOW_VERSION, plural: TRACEFLOW_PLURAL, name };
  for (let attempt = 0; ; attempt++) {
    const tf = (await unlessNotFound(() => api.getClusterCustomObject(ref))) as Traceflow | undefined;
    if (!tf) return undefined;
    const status = change(structuredClone(tf));
    if (!status) return undefined;
    try {
      return (await api.replaceClusterCustomObjectStatus({ ...ref, body: { ...tf, status } })) as Traceflow;
    } catch (e) {
      if (isNotFound(e)) return undefined;
      if (!isConflict(e) || attempt + 1 >= MAX_ATTEMPTS) throw e;
      // Writers on several nodes: spread the retries.
      await sleep(10 + Math.random() * 40 * Math.min(attempt + 1, 5));
    }
  }
}
