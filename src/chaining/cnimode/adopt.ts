import type { V1Pod } from '@kubernetes/client-node';
import { existsSync } from 'node:fs';
import { cachedConfig, ResultCache, type CachedAttachment } from '../../cni/cache.js';
import { convertResult } from '../../cni/result.js';
import type { NetConf } from '../../cni/types.js';
import type { CniRequest } from '../../primary/cniserver/index.js';
import type { PodInterface } from '../../primary/interfacestore/store.js';
import { logger } from '../../util/log.js';

const POD_IFNAME = 'eth0';
const log = logger('chained');

/** A running pod that could not be taken over, and why. */
export interface Unadopted {
  pod: string;
  reason: string;
}

export interface AdoptionReport {
  adopted: string[];
  unadopted: Unadopted[];
}

/** Pods of this node that have a pod network of their own to take over. */
export function adoptablePods(pods: readonly V1Pod[], attached: (namespace: string, name: string) => boolean): V1Pod[] {
  return pods.filter(
    (p) =>
      !p.spec?.hostNetwork &&
      !p.metadata?.deletionTimestamp &&
      (p.status?.phase === 'Running' || p.status?.phase === 'Pending') &&
      !!p.status?.podIP &&
      !attached(p.metadata?.namespace ?? '', p.metadata?.name ?? ''),
  );
}

function cniArg(entry: CachedAttachment, key: string): string | undefined {
  return entry.cniArgs?.find(([k]) => k === key)?.[1];
}

/** The runtime's cached ADD of the pod's eth0 on `network`: the one whose namespace still exists and whose result has the pod's IP. */
export function cachedAddOf(entries: readonly CachedAttachment[], pod: V1Pod, network: string): CachedAttachment | { missing: string } {
  const ns = pod.metadata?.namespace;
  const name = pod.metadata?.name;
  const uid = pod.metadata?.uid;
  const mine = entries.filter((e) => e.networkName === network && e.ifName === POD_IFNAME && cniArg(e, 'K8S_POD_NAMESPACE') === ns && cniArg(e, 'K8S_POD_NAME') === name);
  if (!mine.length) return { missing: `the container runtime has no cached CNI result of network ${network} for it` };
  const sameUid = mine.filter((e) => !uid || !cniArg(e, 'K8S_POD_UID') || cniArg(e, 'K8S_POD_UID') === uid);
  const live = sameUid.filter((e) => e.netns && existsSync(e.netns));
  if (!live.length) return { missing: sameUid.some((e) => !e.netns) ? 'the runtime\'s cached result does not record the sandbox\'s network namespace (libcni older than 1.1)' : 'its sandbox\'s network namespace is gone' };
  const ip = pod.status?.podIP;
  return live.find((e) => e.result?.ips?.some((a) => a.address.split('/')[0] === ip)) ?? live[live.length - 1]!;
}

export interface AdoptOptions {
  /** The runtime's CNI cache (libcni's `results` directory is under it). */
  cacheDir: string;
  /** The primary network's name (the derived conflist keeps it). */
  network: string;
  /** Takes one pod over, as its ADD would. */
  adoptOne: (req: CniRequest) => Promise<PodInterface>;
  attached: (namespace: string, name: string) => boolean;
}

/**
 * Takes over the running pods the primary CNI made before Seine came: each from the container runtime's cached
 * ADD (the sandbox, its namespace and the primary's result), in turn with its sandbox's CNI calls.
 */
export async function adoptRunningPods(pods: readonly V1Pod[], serialize: <T>(containerId: string, fn: () => Promise<T>) => Promise<T>, o: AdoptOptions): Promise<AdoptionReport> {
  const candidates = adoptablePods(pods, o.attached);
  const report: AdoptionReport = { adopted: [], unadopted: [] };
  if (!candidates.length) return report;
  const entries = await new ResultCache(o.cacheDir).list();
  for (const pod of candidates) {
    const id = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
    const entry = cachedAddOf(entries, pod, o.network);
    if ('missing' in entry) {
      report.unadopted.push({ pod: id, reason: entry.missing });
      continue;
    }
    try {
      const config = cachedConfig(entry) as NetConf & { cniVersion: string };
      const version = typeof config.cniVersion === 'string' ? config.cniVersion : '0.4.0';
      const argPairs = entry.cniArgs ?? [];
      const req: CniRequest = {
        command: 'ADD',
        cniVersion: version,
        config: { ...config, name: entry.networkName, type: 'seine' } as NetConf,
        cniPath: [],
        signal: new AbortController().signal,
        containerId: entry.containerId,
        netns: entry.netns!,
        ifname: entry.ifName,
        pod: { namespace: pod.metadata!.namespace!, name: pod.metadata!.name!, ...(pod.metadata?.uid ? { uid: pod.metadata.uid } : {}) },
        args: argPairs.map(([k, v]) => `${k}=${v}`).join(';'),
        argPairs,
        ...(entry.result ? { prevResult: convertResult(entry.result, version) } : {}),
        capabilityArgs: {},
      };
      await serialize(entry.containerId, () => o.adoptOne(req));
      report.adopted.push(id);
    } catch (e) {
      report.unadopted.push({ pod: id, reason: e instanceof Error ? e.message : String(e) });
    }
  }
  log.info({ adopted: report.adopted.length, unadopted: report.unadopted }, 'running pods taken over');
  return report;
}
