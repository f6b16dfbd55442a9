// The demo's traces: `seine trace` of a TCP packet to port 80 of a pod, on the pod network or a secondary network,
// printed as the command prints it.
import type { loadKubeConfig } from '../k8s/kubeconfig.js';
import { processIO, runTrace, traceApi } from './trace.js';

/** The path of one packet through the real datapath, and where it ended; throws when the trace fails. */
export async function showTrace(kc: ReturnType<typeof loadKubeConfig>, say: (line: string) => void, namespace: string, from: string, to: string, what: string, network?: string): Promise<void> {
  say(`\n  seine trace ${namespace}/${from} ${namespace}/${to} --port 80${network ? ` --network ${network}` : ''}   (${what})`);
  let out = '';
  const io = { ...processIO(), stdout: (t: string) => void (out += t), stderr: () => undefined };
  const spec = { source: { namespace, pod: from }, destination: { namespace, pod: to }, packet: { protocol: 'TCP' as const, destinationPort: 80 }, timeoutSeconds: 60, ...(network ? { network } : {}) };
  const code = await runTrace(spec, {}, traceApi(kc), io);
  say(out.trimEnd().split('\n').map((l) => `  ${l}`).join('\n'));
  if (code !== 0) throw new Error(`the trace from ${namespace}/${from} failed`);
}
