// `seine trace SOURCE DESTINATION`: trace one packet from a pod to a pod, a Service or an address. Creates a
// Traceflow (crd.seine.dev/v1alpha1, cluster-scoped), waits for the controller and the node agents to finish it,
// prints the path it took (or the object, -o json|yaml) and deletes it (unless --keep). Shaped like the other
// kubectl-like commands: the kubeconfig's cluster and user (--kubeconfig, $KUBECONFIG, ~/.kube/config; --context),
// errors as one `error: ...` line (the server's refusals as `Error from server ...`) and exit status 1.
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { Command, Option } from 'commander';
import { randomInt } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { stringify as stringifyYaml } from 'yaml';
import { apiFailure, apiReason, apiStatus } from '../k8s/api.js';
import { DEFAULT_TIMEOUT_SECONDS, TRACEFLOW_GROUP, TRACEFLOW_KIND, TRACEFLOW_PLURAL, TRACEFLOW_VERSION, isFinished, type TraceProtocol, type Traceflow, type TraceflowSpec } from '../traceflow/api/types.js';
import { loadUserKubeConfig } from './kubeconfig.js';
import { renderTrace, renderTraceList } from './trace-render.js';

/** How long past the trace's own timeout the command waits for the controller to end it. */
export const GRACE_SECONDS = 30;
const POLL_MS = 500;
const MAX_TIMEOUT_SECONDS = 300;

/** A failure the command reports as one line (and exit status 1): the server's refusal, or `error: ...`. */
export class TraceError extends Error {
  constructor(
    message: string,
    readonly fromServer = false,
  ) {
    super(message);
  }
}

/** The options that shape the spec (as commander hands them over: strings; numbers are accepted too). */
export interface TraceArgsOptions {
  /** -n: the source's namespace when SOURCE is a bare name. */
  namespace?: string;
  /** The namespace when neither SOURCE nor -n names one (the kubeconfig context's); else `default`. */
  defaultNamespace?: string;
  protocol?: string;
  port?: string | number;
  sourcePort?: string | number;
  tcpFlags?: string | number;
  ttl?: string | number;
  timeout?: string | number;
  /** Follow the source pod's next matching packet instead of injecting one. */
  live?: boolean;
  /** A secondary network (NAD) as NAME or NAMESPACE/NAME: the packet leaves from the source's interface on it. */
  network?: string;
}

export interface TraceCommandOptions extends TraceArgsOptions {
  output?: string;
  keep?: boolean;
  list?: boolean;
  kubeconfig?: string;
  context?: string;
}

// Kubernetes name rules: namespaces and Services are DNS labels (Services must start with a letter), pods DNS subdomains.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// As the CRD's pattern: four decimal parts, no leading zeros.
const IPV4 = /^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;
const POD_TYPES = new Set(['pod', 'pods', 'po']);
const SERVICE_TYPES = new Set(['svc', 'service', 'services']);

function checkNamespace(ns: string, ref: string): string {
  if (ns.length > 63 || !DNS_LABEL.test(ns)) throw new TraceError(`invalid namespace ${JSON.stringify(ns)} in ${JSON.stringify(ref)}: a namespace is a DNS label (lower-case letters, digits and '-', at most 63)`);
  return ns;
}

function checkPod(name: string, ref: string): string {
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) throw new TraceError(`invalid pod reference ${JSON.stringify(ref)}: ${JSON.stringify(name)} is not a pod name (use NAMESPACE/NAME or NAME)`);
  return name;
}

function checkService(name: string, ref: string): string {
  if (name.length > 63 || !DNS_1035_LABEL.test(name)) throw new TraceError(`invalid Service reference ${JSON.stringify(ref)}: ${JSON.stringify(name)} is not a Service name (use svc/NAME or NAMESPACE/svc/NAME)`);
  return name;
}

/** `ns/name`, `name`, `ns/pod/name`, `pod/name`: the namespace (when named) and the pod. */
function parsePodRef(ref: string, what: string): { namespace?: string; pod: string } {
  const parts = ref.split('/');
  if (parts.some((p) => p === '')) throw new TraceError(`invalid ${what} ${JSON.stringify(ref)}: use NAMESPACE/NAME or NAME`);
  if (parts.length === 1) return { pod: checkPod(parts[0]!, ref) };
  if (parts.length === 2) {
    if (POD_TYPES.has(parts[0]!)) return { pod: checkPod(parts[1]!, ref) };
    return { namespace: checkNamespace(parts[0]!, ref), pod: checkPod(parts[1]!, ref) };
  }
  if (parts.length === 3 && POD_TYPES.has(parts[1]!)) return { namespace: checkNamespace(parts[0]!, ref), pod: checkPod(parts[2]!, ref) };
  throw new TraceError(`invalid ${what} ${JSON.stringify(ref)}: use NAMESPACE/NAME or NAME`);
}

/** Something that is meant as an address (digits and dots, or IPv6), valid or not. */
const looksLikeAddress = (s: string): boolean => (/^[0-9.]+(:[0-9]*)?$/.test(s) && s.includes('.')) || (s.includes(':') && !s.includes('/'));

function integerOption(value: string | number | undefined, flag: string, min: number, max: number, what: string): number | undefined {
  if (value === undefined) return undefined;
  const text = String(value).trim();
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new TraceError(`invalid ${flag} ${JSON.stringify(String(value))}: ${what} from ${min} to ${max}`);
  return n;
}

/**
 * The Traceflow spec for `seine trace SOURCE DESTINATION [options]`, or a TraceError saying what is wrong.
 * SOURCE: a pod, NAMESPACE/NAME or NAME (in -n, else the default namespace). DESTINATION: a pod (NAMESPACE/NAME,
 * or NAME in the source's namespace), a Service (svc/NAME in the source's namespace, NAMESPACE/svc/NAME), or an
 * IPv4 address. `pod/` may prefix a pod (`pod/NAME`, `NAMESPACE/pod/NAME`).
 */
export function traceSpecFromArgs(source: string, destination: string, opts: TraceArgsOptions = {}): TraceflowSpec {
  source = source.trim();
  destination = destination.trim();
  if (!source) throw new TraceError('the source pod is empty: use NAMESPACE/NAME or NAME');
  if (!destination) throw new TraceError('the destination is empty: use a pod (NAMESPACE/NAME or NAME), a Service (svc/NAME or NAMESPACE/svc/NAME) or an IPv4 address');

  // The source: a pod only.
  if (looksLikeAddress(source)) throw new TraceError(`invalid source ${JSON.stringify(source)}: the source must be a pod (NAMESPACE/NAME or NAME), not an address`);
  const srcParts = source.split('/');
  if ((srcParts.length === 2 && SERVICE_TYPES.has(srcParts[0]!)) || (srcParts.length === 3 && SERVICE_TYPES.has(srcParts[1]!))) throw new TraceError(`invalid source ${JSON.stringify(source)}: the source must be a pod, not a Service`);
  const src = parsePodRef(source, 'source pod reference');
  if (opts.namespace !== undefined) checkNamespace(opts.namespace, `--namespace ${opts.namespace}`);
  if (src.namespace !== undefined && opts.namespace !== undefined && src.namespace !== opts.namespace) {
    throw new TraceError(`the source ${JSON.stringify(source)} is in namespace ${src.namespace} but --namespace says ${opts.namespace}`);
  }
  const namespace = src.namespace ?? opts.namespace ?? opts.defaultNamespace ?? 'default';

  // The destination.
  let dst: TraceflowSpec['destination'];
  if (IPV4.test(destination)) {
    dst = { ip: destination };
  } else if (looksLikeAddress(destination)) {
    if (/^[0-9.]+:[0-9]*$/.test(destination)) throw new TraceError(`invalid destination ${JSON.stringify(destination)}: give the address alone and the port with --port`);
    if (destination.includes(':')) throw new TraceError(`invalid destination ${JSON.stringify(destination)}: only IPv4 addresses can be traced`);
    throw new TraceError(`invalid destination ${JSON.stringify(destination)}: not an IPv4 address`);
  } else {
    const parts = destination.split('/');
    if (parts.some((p) => p === '')) throw new TraceError(`invalid destination ${JSON.stringify(destination)}: use a pod (NAMESPACE/NAME or NAME), a Service (svc/NAME or NAMESPACE/svc/NAME) or an IPv4 address`);
    if (parts.length === 2 && SERVICE_TYPES.has(parts[0]!)) dst = { service: checkService(parts[1]!, destination) };
    else if (parts.length === 3 && SERVICE_TYPES.has(parts[1]!)) dst = { namespace: checkNamespace(parts[0]!, destination), service: checkService(parts[2]!, destination) };
    else {
      const pod = parsePodRef(destination, 'destination pod reference');
      dst = pod.namespace !== undefined ? { namespace: pod.namespace, pod: pod.pod } : { pod: pod.pod };
    }
  }

  // The packet.
  const protocol = (opts.protocol ?? 'TCP').trim().toUpperCase();
  if (protocol !== 'TCP' && protocol !== 'UDP' && protocol !== 'ICMP') throw new TraceError(`invalid --protocol ${JSON.stringify(opts.protocol)}: TCP, UDP or ICMP`);
  const destinationPort = integerOption(opts.port, '--port', 1, 65535, 'a port number');
  const sourcePort = integerOption(opts.sourcePort, '--source-port', 1, 65535, 'a port number');
  const tcpFlags = integerOption(opts.tcpFlags, '--tcp-flags', 0, 255, 'the TCP flags as a number');
  const ttl = integerOption(opts.ttl, '--ttl', 1, 255, 'a TTL');
  const timeoutSeconds = integerOption(opts.timeout, '--timeout', 1, MAX_TIMEOUT_SECONDS, 'seconds') ?? DEFAULT_TIMEOUT_SECONDS;
  if (protocol === 'ICMP' && destinationPort !== undefined) throw new TraceError('--port is for TCP and UDP: an ICMP packet has no ports');
  if (protocol === 'ICMP' && sourcePort !== undefined) throw new TraceError('--source-port is for TCP and UDP: an ICMP packet has no ports');
  if (protocol !== 'TCP' && tcpFlags !== undefined) throw new TraceError(`--tcp-flags is for TCP: not a ${protocol} packet`);
  if (opts.live && tcpFlags !== undefined) throw new TraceError('--tcp-flags is for an injected packet: --live follows the packet the pod sends, whatever its flags');
  if (opts.live && ttl !== undefined) throw new TraceError('--ttl is for an injected packet: --live follows the packet the pod sends, whatever its TTL');
  const network = opts.network?.trim();
  if (network !== undefined) {
    const parts = network.split('/');
    if (parts.length > 2 || parts.some((p) => !DNS_SUBDOMAIN.test(p)) || (parts.length === 2 && !DNS_LABEL.test(parts[0]!))) {
      throw new TraceError(`invalid --network ${JSON.stringify(opts.network)}: a NetworkAttachmentDefinition as NAME or NAMESPACE/NAME`);
    }
    if (dst.service !== undefined) throw new TraceError('--network: Services are on the pod network; trace to a pod or an address on a secondary network');
    if (opts.live) throw new TraceError('--network: live traffic is traced on the pod network only; leave out --live to inject a packet');
  }

  return {
    source: { namespace, pod: src.pod },
    destination: dst,
    packet: {
      protocol: protocol as TraceProtocol,
      ...(sourcePort !== undefined ? { sourcePort } : {}),
      ...(destinationPort !== undefined ? { destinationPort } : {}),
      ...(tcpFlags !== undefined ? { tcpFlags } : {}),
      ...(ttl !== undefined ? { ttl } : {}),
    },
    ...(opts.live ? { liveTraffic: true } : {}),
    ...(network !== undefined ? { network } : {}),
    timeoutSeconds,
  };
}

/** The Traceflow calls the command makes (the API server's, or a test's). */
export interface TraceApi {
  create(body: Traceflow): Promise<Traceflow>;
  get(name: string): Promise<Traceflow>;
  delete(name: string): Promise<void>;
  list(): Promise<Traceflow[]>;
}

export function traceApi(kc: KubeConfig): TraceApi {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const kind = { group: TRACEFLOW_GROUP, version: TRACEFLOW_VERSION, plural: TRACEFLOW_PLURAL };
  return {
    create: async (body) => (await custom.createClusterCustomObject({ ...kind, body })) as Traceflow,
    get: async (name) => (await custom.getClusterCustomObject({ ...kind, name })) as Traceflow,
    delete: async (name) => {
      await custom.deleteClusterCustomObject({ ...kind, name });
    },
    list: async () => ((await custom.listClusterCustomObject(kind)) as { items: Traceflow[] }).items,
  };
}

export interface TraceIO {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Waits; rejects when the signal aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  now(): number;
  /** The suffix of a new trace's name. */
  suffix(): string;
  /** Ctrl-C (or SIGTERM): stop waiting, clean up. */
  signal?: AbortSignal;
  pollMs?: number;
}

const NAME_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

/** Five characters as generateName would pick them (no vowels: no words). */
export function randomSuffix(): string {
  let s = '';
  for (let i = 0; i < 5; i++) s += NAME_CHARS[randomInt(NAME_CHARS.length)];
  return s;
}

export const processIO = (signal?: AbortSignal): TraceIO => ({
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  sleep: (ms, s) => delay(ms, undefined, { signal: s }),
  now: () => Date.now(),
  suffix: randomSuffix,
  signal,
});

/** A failed API call as the command reports it: the server's refusal as kubectl prints it, else why it was not reached. */
function apiError(err: unknown, doing: string): TraceError {
  if (apiStatus(err) === undefined) return new TraceError(`cannot ${doing}: ${err instanceof Error ? err.message : String(err)}`);
  const reason = apiReason(err);
  let message = `Error from server${reason ? ` (${reason})` : ''}: ${apiFailure(err)}`;
  if (apiStatus(err) === 404 && doing.startsWith('create')) message += ' (is the Traceflow CRD, traceflows.crd.seine.dev, installed?)';
  return new TraceError(message, true);
}

class Interrupted extends Error {}

/** Rejects with Interrupted as soon as the signal aborts (the call itself runs on). */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(new Interrupted());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Interrupted());
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function serialize(obj: unknown, output: 'json' | 'yaml'): string {
  return output === 'json' ? `${JSON.stringify(obj, null, 4)}\n` : stringifyYaml(obj);
}

function printObject(tf: Traceflow, output: string | undefined): string {
  return output === 'json' || output === 'yaml' ? serialize(tf, output) : `${renderTrace(tf)}\n`;
}

/**
 * Creates the trace, waits for it to finish (reporting its phase on stderr), prints it and deletes it (unless
 * keep, also when interrupted or failing). Resolves to the exit status: 0 Succeeded, 1 Failed, 130 interrupted;
 * rejects with a TraceError otherwise.
 */
export async function runTrace(spec: TraceflowSpec, o: { output?: string; keep?: boolean }, api: TraceApi, io: TraceIO): Promise<number> {
  let name = '';
  let tf: Traceflow | undefined;
  for (let attempt = 0; !tf; attempt++) {
    name = `trace-${io.suffix()}`;
    try {
      tf = await api.create({ apiVersion: `${TRACEFLOW_GROUP}/${TRACEFLOW_VERSION}`, kind: TRACEFLOW_KIND, metadata: { name }, spec });
    } catch (e) {
      // A name another trace holds: pick another.
      if (apiStatus(e) === 409 && attempt < 3) continue;
      throw apiError(e, `create traceflow ${name}`);
    }
  }
  const limitSeconds = (spec.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS) + GRACE_SECONDS;
  const deadline = io.now() + limitSeconds * 1000;
  try {
    let said = '';
    let lastError: unknown;
    while (!isFinished(tf)) {
      if (io.signal?.aborted) throw new Interrupted();
      const phase = tf.status?.phase ?? 'Pending';
      const progress = `waiting for ${name} ... ${phase}${tf.status?.message ? `: ${tf.status.message}` : ''}`;
      if (progress !== said) io.stderr(`${progress}\n`);
      said = progress;
      if (io.now() >= deadline) {
        const why = lastError !== undefined ? `; the last read failed: ${apiError(lastError, `read traceflow ${name}`).message}` : '; is the Seine controller running?';
        throw new TraceError(`traceflow ${name} did not finish in ${limitSeconds} s (still ${phase})${why}`);
      }
      try {
        await io.sleep(io.pollMs ?? POLL_MS, io.signal);
      } catch {
        throw new Interrupted();
      }
      try {
        tf = await abortable(api.get(name), io.signal);
        lastError = undefined;
      } catch (e) {
        if (e instanceof Interrupted) throw e;
        const code = apiStatus(e);
        if (code === 404) {
          name = ''; // gone: nothing to delete
          throw new TraceError('the traceflow was deleted while waiting for it');
        }
        if (code === 401 || code === 403) throw apiError(e, `read traceflow ${name}`);
        lastError = e; // a blip: try again until the deadline
      }
    }
    io.stdout(printObject(tf, o.output));
    return tf.status?.phase === 'Succeeded' ? 0 : 1;
  } catch (e) {
    if (e instanceof Interrupted) return 130;
    throw e;
  } finally {
    if (name && o.keep) io.stderr(`traceflow ${name} kept (delete it with: kubectl delete traceflow ${name})\n`);
    else if (name) {
      try {
        await api.delete(name);
      } catch (e) {
        if (apiStatus(e) !== 404) io.stderr(`warning: could not delete traceflow ${name}: ${apiError(e, 'delete it').message}\n`);
      }
    }
  }
}

function loadConfig(path: string | undefined, context: string | undefined): KubeConfig {
  return loadUserKubeConfig(path, context, (m) => new TraceError(m));
}

async function listTraces(o: TraceCommandOptions): Promise<void> {
  const kc = loadConfig(o.kubeconfig, o.context);
  let items: Traceflow[];
  try {
    items = await traceApi(kc).list();
  } catch (e) {
    throw apiError(e, 'list traceflows');
  }
  if (o.output === 'json' || o.output === 'yaml') {
    process.stdout.write(serialize({ apiVersion: 'v1', kind: 'List', items }, o.output));
    return;
  }
  if (!items.length) process.stderr.write('No resources found\n');
  else process.stdout.write(`${renderTraceList(items)}\n`);
}

async function trace(source: string | undefined, destination: string | undefined, o: TraceCommandOptions): Promise<number> {
  if (o.list) {
    if (source !== undefined) throw new TraceError('--list takes no SOURCE or DESTINATION');
    await listTraces(o);
    return 0;
  }
  if (source === undefined) throw new TraceError("missing required argument 'source'");
  if (destination === undefined) throw new TraceError("missing required argument 'destination'");
  // The arguments first: a mistake in them is said before the kubeconfig is read.
  traceSpecFromArgs(source, destination, o);
  const kc = loadConfig(o.kubeconfig, o.context);
  const spec = traceSpecFromArgs(source, destination, { ...o, defaultNamespace: kc.getContextObject(kc.getCurrentContext())?.namespace });

  const ac = new AbortController();
  const onSignal = () => ac.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await runTrace(spec, o, traceApi(kc), processIO(ac.signal));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function traceCommand(): Command {
  return new Command('trace')
    .description('trace one packet from a pod to a pod, a Service or an address: every node, table and policy on its way, and where it ended')
    .argument('[source]', 'the source pod: NAMESPACE/NAME, or NAME (in -n)')
    .argument('[destination]', 'a pod (NAMESPACE/NAME, or NAME in the source\'s namespace), a Service (svc/NAME, NAMESPACE/svc/NAME) or an IPv4 address')
    .option('-n, --namespace <namespace>', 'the source\'s namespace (default: the kubeconfig context\'s, else default)')
    .option('--protocol <protocol>', 'TCP, UDP or ICMP', 'TCP')
    .option('--port <port>', 'TCP or UDP destination port (default: a Service\'s first port, else 80; with --live, any)')
    .option('--source-port <port>', 'TCP or UDP source port (default: an ephemeral one)')
    .option('--tcp-flags <flags>', 'TCP flags as a number (default: 2, SYN)')
    .option('--ttl <ttl>', 'the IP TTL (default: 64)')
    .option('--network <nad>', 'trace on a secondary network (a Seine VLAN or overlay NetworkAttachmentDefinition, NAME in the source\'s namespace or NAMESPACE/NAME): from the source\'s interface on it to the destination\'s address on it')
    .option('--live', 'follow the next matching packet the source pod sends (delivered as usual) instead of injecting one')
    .option('--timeout <seconds>', `how long the trace may take (at most ${MAX_TIMEOUT_SECONDS})`, String(DEFAULT_TIMEOUT_SECONDS))
    .addOption(new Option('-o, --output <format>', 'print the finished Traceflow as json or yaml instead of the diagram').choices(['json', 'yaml']))
    .option('--keep', 'keep the Traceflow (default: delete it once printed)')
    .option('--list', 'list the Traceflows instead (kept ones, and others\' running)')
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG, else ~/.kube/config)')
    .option('--context <name>', 'the kubeconfig context to use (default: its current context)')
    .action(async (source: string | undefined, destination: string | undefined, o: TraceCommandOptions) => {
      try {
        process.exitCode = await trace(source, destination, o);
      } catch (e) {
        if (!(e instanceof TraceError)) throw e;
        process.stderr.write(e.fromServer ? `${e.message}\n` : `error: ${e.message}\n`);
        process.exitCode = 1;
      }
    });
}
