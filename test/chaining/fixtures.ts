import type { V1Namespace, V1Node, V1Pod } from '@kubernetes/client-node';
import type { ServiceChain, ServiceChainSpec } from '../../src/chaining/api/types.js';

// Cluster objects for the pure chaining tests, shaped as the API server returns them.

export function chain(name: string, spec: Partial<ServiceChainSpec> = {}, extra: { namespace?: string; uid?: string; created?: string; status?: ServiceChain['status'] } = {}): ServiceChain {
  return {
    apiVersion: 'crd.seine.dev/v1alpha1',
    kind: 'ServiceChain',
    metadata: { name, namespace: extra.namespace ?? 'default', uid: extra.uid ?? `uid-${name}`, generation: 1, creationTimestamp: (extra.created ?? '2025-01-01T00:00:00Z') as unknown as Date },
    spec: {
      classifier: { destination: { ipBlock: { cidr: '10.0.0.0/8' } } },
      hops: [{ name: 'fw', podSelector: { matchLabels: { app: 'fw' } }, interfaces: { ingress: 'in0', egress: 'out0' } }],
      ...spec,
    },
    ...(extra.status ? { status: extra.status } : {}),
  };
}

export function pod(name: string, o: { ns?: string; labels?: Record<string, string>; ip?: string; node?: string; ready?: boolean; terminating?: boolean; phase?: string; networkStatus?: unknown; created?: string } = {}): V1Pod {
  return {
    metadata: {
      name,
      namespace: o.ns ?? 'default',
      uid: `pod-${o.ns ?? 'default'}-${name}`,
      labels: o.labels ?? {},
      creationTimestamp: (o.created ?? '2025-01-01T00:00:00Z') as unknown as Date,
      ...(o.terminating ? { deletionTimestamp: '2025-01-02T00:00:00Z' as unknown as Date } : {}),
      ...(o.networkStatus ? { annotations: { 'k8s.v1.cni.cncf.io/network-status': JSON.stringify(o.networkStatus) } } : {}),
    },
    spec: { nodeName: o.node ?? 'node-1', containers: [] },
    status: {
      phase: o.phase ?? 'Running',
      ...(o.ip ? { podIP: o.ip, podIPs: [{ ip: o.ip }] } : {}),
      conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }],
    },
  };
}

export function namespace(name: string, labels: Record<string, string> = {}): V1Namespace {
  return { metadata: { name, labels } };
}

export function node(name: string, ip: string, annotations: Record<string, string> = {}): V1Node {
  return { metadata: { name, annotations }, status: { addresses: [{ type: 'InternalIP', address: ip }] } };
}
