import { CniCode, CniError } from './errors.js';

/** CNI_ARGS as a record or as ordered pairs (order is kept on the wire). */
export type CniArgsInput = Readonly<Record<string, string>> | ReadonlyArray<readonly [string, string]>;

function pairsOf(input: CniArgsInput): Array<[string, string]> {
  return Array.isArray(input) ? input.map(([k, v]) => [k, v] as [string, string]) : Object.entries(input as Record<string, string>);
}

/**
 * `K=V;K=V` for CNI_ARGS. `IgnoreUnknown=1` goes first unless disabled or already present, so that
 * plugins which do not know a key (e.g. K8S_POD_UID) do not fail. Keys and values may contain neither
 * ';' nor '=' (plugins split on both): code 4 otherwise.
 */
export function buildCniArgs(input: CniArgsInput, opts: { ignoreUnknown?: boolean } = {}): string {
  const pairs = pairsOf(input);
  for (const [k, v] of pairs) {
    if (!k || /[;=]/.test(k) || /[;=]/.test(v)) {
      throw new CniError(CniCode.InvalidEnvironment, 'invalid CNI_ARGS pair', `${JSON.stringify(k)}=${JSON.stringify(v)}: keys must be non-empty and neither may contain ';' or '='`);
    }
  }
  if ((opts.ignoreUnknown ?? true) && !pairs.some(([k]) => k === 'IgnoreUnknown')) pairs.unshift(['IgnoreUnknown', '1']);
  return pairs.map(([k, v]) => `${k}=${v}`).join(';');
}

/** Ordered pairs from a CNI_ARGS string; empty segments are skipped, a pair without '=' is code 4. */
export function parseCniArgs(s: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const item of s.split(';')) {
    if (item === '') continue;
    const parts = item.split('=');
    if (parts.length !== 2 || parts[0] === '') throw new CniError(CniCode.InvalidEnvironment, 'invalid CNI_ARGS pair', JSON.stringify(item));
    out.push([parts[0]!, parts[1]!]);
  }
  return out;
}

/** CNI_ARGS as a record (a repeated key keeps its last value). */
export function cniArgsRecord(s: string): Record<string, string> {
  return Object.fromEntries(parseCniArgs(s));
}

/** The pod identity a Kubernetes runtime passes in CNI_ARGS. */
export interface K8sPodArgs {
  namespace: string;
  name: string;
  infraContainerId: string;
  uid?: string;
}

/** Pairs in the order kubelet/containerd send them (IgnoreUnknown is added by buildCniArgs). */
export function k8sCniArgs(pod: K8sPodArgs): Array<[string, string]> {
  return [
    ['K8S_POD_NAMESPACE', pod.namespace],
    ['K8S_POD_NAME', pod.name],
    ['K8S_POD_INFRA_CONTAINER_ID', pod.infraContainerId],
    ...(pod.uid ? ([['K8S_POD_UID', pod.uid]] as Array<[string, string]>) : []),
  ];
}

const ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Spec rule for CNI_CONTAINERID: empty is code 3 (unknown container), bad characters code 4. */
export function validateContainerId(id: string): void {
  if (!id) throw new CniError(CniCode.UnknownContainer, 'missing container ID');
  if (!ID_RE.test(id)) throw new CniError(CniCode.InvalidEnvironment, 'invalid characters in container ID', JSON.stringify(id));
}

/** Spec rule for CNI_IFNAME (a Linux interface name): code 4 when broken. */
export function validateIfName(name: string): void {
  let why: string | undefined;
  if (!name) why = 'is empty';
  else if (name.length > 15) why = 'is longer than 15 characters';
  else if (name === '.' || name === '..') why = 'is "." or ".."';
  else if (/[/:\s]/.test(name)) why = "contains '/', ':' or whitespace";
  if (why) throw new CniError(CniCode.InvalidEnvironment, 'invalid interface name', `${JSON.stringify(name)} ${why}`);
}

/** Network names key on-disk state (cache files, IPAM dirs): code 7 when unusable. */
export function validateNetworkName(name: string): void {
  if (!ID_RE.test(name)) throw new CniError(CniCode.InvalidNetworkConfig, 'invalid network name', JSON.stringify(name));
}
