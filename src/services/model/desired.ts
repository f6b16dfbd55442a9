import type { V1EndpointSlice, V1Service, V1ServicePort } from '@kubernetes/client-node';
import ipaddr from 'ipaddr.js';
import { NODEPORT_VIRTUAL_IP } from '../host/index.js';
import type { L4Protocol, NodeServices, ServiceEndpoint, ServiceFrontend } from './types.js';
import { KeptFromLast } from '../../util/generations.js';

/** The label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** Services carrying this label belong to another proxy. */
export const SERVICE_PROXY_NAME_LABEL = 'service.kubernetes.io/service-proxy-name';
/** kube-apiserver's default sessionAffinityConfig.clientIP.timeoutSeconds. */
export const DEFAULT_AFFINITY_SECONDS = 10_800;

export interface ProxyNode {
  name: string;
  /**
   * This node's pod CIDR: endpoints in it are delivered by this node's bridge. Chained mode has none: the
   * endpoints the EndpointSlices place on this node are.
   */
  podCidr?: string;
}

/** One endpoint address of a slice, with the conditions kube-proxy reads. */
interface SliceEndpoint {
  ip: string;
  port: number;
  nodeName?: string;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
}

const PROTOCOLS: readonly string[] = ['TCP', 'UDP', 'SCTP'];

const key = (ns: string | undefined, name: string | undefined): string => `${ns ?? ''}/${name ?? ''}`;

/** Whether this proxy handles the Service at all (kube-proxy's own rules for what it skips). */
export function proxied(svc: V1Service): boolean {
  const spec = svc.spec;
  if (!spec || spec.type === 'ExternalName') return false;
  if (!spec.clusterIP || spec.clusterIP === 'None') return false;
  return svc.metadata?.labels?.[SERVICE_PROXY_NAME_LABEL] === undefined;
}

function isIPv4(ip: string | undefined): ip is string {
  return !!ip && ipaddr.IPv4.isValidFourPartDecimal(ip);
}

/** The slice endpoints serving one Service port, deduplicated (slices overlap while they are rewritten). */
function endpointsOf(slices: readonly V1EndpointSlice[], port: V1ServicePort): SliceEndpoint[] {
  const out = new Map<string, SliceEndpoint>();
  const protocol = port.protocol ?? 'TCP';
  for (const slice of slices) {
    if (slice.addressType !== 'IPv4') continue;
    const sp = (slice.ports ?? []).find((p) => (p.name ?? '') === (port.name ?? '') && (p.protocol ?? 'TCP') === protocol);
    if (!sp || typeof sp.port !== 'number' || sp.port < 1 || sp.port > 65535) continue;
    for (const ep of slice.endpoints ?? []) {
      const ip = ep.addresses?.[0];
      if (!isIPv4(ip)) continue;
      const c = ep.conditions ?? {};
      // Absent conditions read as in the API's documentation: ready unless said otherwise, serving as ready.
      const ready = c.ready ?? true;
      const e: SliceEndpoint = { ip, port: sp.port, nodeName: ep.nodeName, ready, serving: c.serving ?? ready, terminating: c.terminating ?? false };
      const k = `${ip}:${sp.port}`;
      const prev = out.get(k);
      if (!prev || (e.ready && !prev.ready)) out.set(k, e);
    }
  }
  return [...out.values()].sort((a, b) => (a.ip === b.ip ? a.port - b.port : a.ip < b.ip ? -1 : 1));
}

/** kube-proxy's choice: the ready endpoints; when none is ready, the ones still serving while they terminate. */
function usable(eps: readonly SliceEndpoint[]): SliceEndpoint[] {
  const ready = eps.filter((e) => e.ready);
  return ready.length ? ready : eps.filter((e) => e.serving && e.terminating);
}

/**
 * The Service state of one node, from the Services and EndpointSlices of the cluster: a pure function, the
 * only place where Kubernetes' Service semantics are interpreted.
 */
/**
 * Each Service's share of the node's state as last computed, with the objects it came from: informers replace an
 * object when it changes, so the same Service and slice objects give the same share, without computing it again.
 */
export class ServiceStateMemo {
  private readonly kept = new KeptFromLast<{ svc: V1Service; slices: readonly V1EndpointSlice[]; share: NodeServices }>();
  /** Whether the last computation changed any share (or the set of Services). */
  changed = true;

  share(name: string, svc: V1Service, slices: readonly V1EndpointSlice[], compute: () => NodeServices): NodeServices {
    const prev = this.kept.peek(name);
    const same = prev && prev.svc === svc && prev.slices.length === slices.length && prev.slices.every((x, i) => x === slices[i]);
    if (!same) this.changed = true;
    return this.kept.keep(name, same ? prev : { svc, slices, share: compute() }).share;
  }

  begin(): void {
    this.changed = false;
  }

  settle(): void {
    if (this.kept.settle()) this.changed = true;
  }
}

export function nodeServices(services: readonly V1Service[], slices: readonly V1EndpointSlice[], node: ProxyNode, memo = new ServiceStateMemo()): NodeServices {
  memo.begin();
  const podCidr = node.podCidr ? ipaddr.IPv4.parseCIDR(node.podCidr) : undefined;
  const slicesOf = new Map<string, V1EndpointSlice[]>();
  for (const s of slices) {
    const name = s.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (!name) continue;
    const k = key(s.metadata?.namespace, name);
    slicesOf.set(k, [...(slicesOf.get(k) ?? []), s]);
  }
  const toEndpoint = (e: SliceEndpoint): ServiceEndpoint => ({ ip: e.ip, port: e.port, local: podCidr ? ipaddr.IPv4.parse(e.ip).match(podCidr) : e.nodeName === node.name });
  const onThisNode = (e: SliceEndpoint): boolean => e.nodeName === node.name;

  const out: NodeServices = { frontends: [], nodePorts: [], healthChecks: [] };
  const sorted = [...services].sort((a, b) => key(a.metadata?.namespace, a.metadata?.name).localeCompare(key(b.metadata?.namespace, b.metadata?.name)));
  for (const svc of sorted) {
    if (!proxied(svc)) continue;
    const name = key(svc.metadata?.namespace, svc.metadata?.name);
    const mySlices = slicesOf.get(name) ?? [];
    const share = memo.share(name, svc, mySlices, () => serviceShare(svc, name, mySlices));
    out.frontends.push(...share.frontends);
    out.nodePorts.push(...share.nodePorts);
    out.healthChecks.push(...share.healthChecks);
  }
  memo.settle();
  return out;

  /** One Service's frontends, node ports and health check. */
  function serviceShare(svc: V1Service, name: string, mySlices: readonly V1EndpointSlice[]): NodeServices {
    const out: NodeServices = { frontends: [], nodePorts: [], healthChecks: [] };
    const spec = svc.spec!;
    const affinitySeconds = spec.sessionAffinity === 'ClientIP' ? (spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_AFFINITY_SECONDS) : undefined;
    const externalLocal = spec.externalTrafficPolicy === 'Local';
    const internalLocal = spec.internalTrafficPolicy === 'Local';
    const clusterIps = (spec.clusterIPs?.length ? spec.clusterIPs : [spec.clusterIP]).filter(isIPv4);
    // Ingress addresses in ipMode Proxy are the load balancer's own: traffic reaches the nodes with their address.
    const ingress = (svc.status?.loadBalancer?.ingress ?? []).filter((i) => i.ipMode !== 'Proxy').map((i) => i.ip);
    const externalIps = [...(spec.externalIPs ?? []), ...ingress].filter(isIPv4);
    let localServing = 0;
    for (const port of spec.ports ?? []) {
      const protocol = (port.protocol ?? 'TCP') as L4Protocol;
      if (!PROTOCOLS.includes(protocol) || typeof port.port !== 'number') continue;
      const all = endpointsOf(mySlices, port);
      const cluster = usable(all).map(toEndpoint);
      const local = usable(all.filter(onThisNode)).map(toEndpoint);
      localServing = Math.max(localServing, local.length);
      const frontend = (kind: ServiceFrontend['kind'], ip: string, p: number, endpoints: ServiceEndpoint[], externalEndpoints?: ServiceEndpoint[]): ServiceFrontend => ({
        service: `${name}:${port.name ?? ''}`,
        kind,
        ip,
        protocol,
        port: p,
        endpoints,
        reject: cluster.length === 0,
        ...(externalEndpoints ? { externalEndpoints } : {}),
        ...(affinitySeconds !== undefined ? { affinitySeconds } : {}),
      });
      for (const ip of clusterIps) out.frontends.push(frontend('ClusterIP', ip, port.port, internalLocal ? local : cluster));
      // Node ports and external addresses: cluster endpoints for the cluster's own and masqueraded traffic.
      const ext = externalLocal ? local : undefined;
      if ((spec.type === 'NodePort' || spec.type === 'LoadBalancer') && typeof port.nodePort === 'number') {
        out.frontends.push(frontend('NodePort', NODEPORT_VIRTUAL_IP, port.nodePort, cluster, ext));
        out.nodePorts.push({ protocol, port: port.nodePort, masquerade: !externalLocal, reject: cluster.length === 0 });
      }
      for (const ip of externalIps) out.frontends.push(frontend('External', ip, port.port, cluster, ext));
    }
    if (externalLocal && typeof spec.healthCheckNodePort === 'number') out.healthChecks.push({ service: name, port: spec.healthCheckNodePort, localEndpoints: localServing });
    return out;
  }
}
