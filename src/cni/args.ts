import { CniCode, CniError } from './errors.js';
import { brief, hasControlCharacters } from './values.js';

/** CNI_ARGS as a record or as ordered pairs (order is kept on the wire). */
export type CniArgsInput = Readonly<Record<string, string>> | ReadonlyArray<readonly [string, string]>;

function pairsOf(input: CniArgsInput): Array<[string, string]> {
  return Array.isArray(input) ? input.map(([k, v]) => [k, v] as [string, string]) : Object.entries(input as Record<string, string>);
}

/** Code 4 unless a CNI_ARGS key and value can travel and be used: non-empty key, no ';', '=' or control characters. */
function checkPair(k: string, v: string): void {
  if (!k || /[;=]/.test(k) || /[;=]/.test(v) || hasControlCharacters(k) || hasControlCharacters(v)) {
    throw new CniError(CniCode.InvalidEnvironment, 'invalid CNI_ARGS pair', `${brief(k)}=${brief(v)}: keys must be non-empty and neither may contain ';', '=' or control characters`);
  }
}

/**
 * `K=V;K=V` for CNI_ARGS. `IgnoreUnknown=1` goes first unless disabled or already present, so that
 * plugins which do not know a key (e.g. K8S_POD_UID) do not fail. Keys and values may contain neither
 * ';' nor '=' (plugins split on both) nor control characters: code 4 otherwise.
 */
export function buildCniArgs(input: CniArgsInput, opts: { ignoreUnknown?: boolean } = {}): string {
  const pairs = pairsOf(input);
  for (const [k, v] of pairs) checkPair(k, v);
  if ((opts.ignoreUnknown ?? true) && !pairs.some(([k]) => k === 'IgnoreUnknown')) pairs.unshift(['IgnoreUnknown', '1']);
  return pairs.map(([k, v]) => `${k}=${v}`).join(';');
}

/** Ordered pairs from a CNI_ARGS string; empty segments are skipped, a pair without '=' or with control characters is code 4. */
export function parseCniArgs(s: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const item of s.split(';')) {
    if (item === '') continue;
    const parts = item.split('=');
    if (parts.length !== 2) throw new CniError(CniCode.InvalidEnvironment, 'invalid CNI_ARGS pair', brief(item));
    checkPair(parts[0]!, parts[1]!);
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
  if (!ID_RE.test(id)) throw new CniError(CniCode.InvalidEnvironment, 'invalid characters in container ID', brief(id));
}

/** Linux's IFNAMSIZ less the terminating NUL: the kernel counts bytes, not characters. */
export const MAX_IFNAME_BYTES = 15;

/** Spec rule for CNI_IFNAME (a Linux interface name): code 4 when broken. */
export function validateIfName(name: string): void {
  let why: string | undefined;
  if (!name) why = 'is empty';
  else if (Buffer.byteLength(name, 'utf8') > MAX_IFNAME_BYTES) why = `is longer than ${MAX_IFNAME_BYTES} bytes`;
  else if (name === '.' || name === '..') why = 'is "." or ".."';
  else if (/[/:\s]/.test(name) || hasControlCharacters(name)) why = "contains '/', ':', whitespace or control characters";
  if (why) throw new CniError(CniCode.InvalidEnvironment, 'invalid interface name', `${brief(name)} ${why}`);
}

/** CNI_NETNS: an absolute path (empty only where the command allows it), without control characters; code 4 otherwise. */
export function validateNetns(path: string): void {
  if (path === '') return;
  if (!path.startsWith('/') || hasControlCharacters(path)) {
    throw new CniError(CniCode.InvalidEnvironment, 'invalid network namespace path', `${brief(path)} must be an absolute path without control characters`);
  }
}

/** Network names key on-disk state (cache files, IPAM dirs): code 7 when unusable. */
export function validateNetworkName(name: string): void {
  if (!ID_RE.test(name)) throw new CniError(CniCode.InvalidNetworkConfig, 'invalid network name', brief(name));
}

/** The attachment an ADD, DEL or CHECK names, from its environment (required variables already checked). */
export interface AttachmentEnv {
  containerId: string;
  /** Empty on a DEL whose namespace is already gone. */
  netns: string;
  ifname: string;
  /** CNI_ARGS as given, and as pairs. */
  args: string;
  argPairs: Array<[string, string]>;
}

/** CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME and CNI_ARGS validated, as every plugin entry point decodes them. */
export function attachmentEnv(env: Readonly<Record<string, string | undefined>>): AttachmentEnv {
  const containerId = env.CNI_CONTAINERID ?? '';
  const ifname = env.CNI_IFNAME ?? '';
  const netns = env.CNI_NETNS ?? '';
  const args = env.CNI_ARGS ?? '';
  validateContainerId(containerId);
  validateIfName(ifname);
  validateNetns(netns);
  return { containerId, netns, ifname, args, argPairs: parseCniArgs(args) };
}
