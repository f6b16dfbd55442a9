import type { PatchMeta } from './patch.js';

// Strategic-merge metadata (patchStrategy/patchMergeKey tags of the kube Go types) for the built-in
// kinds served here. Fields not listed replace wholesale, as untagged fields do in kube.

const objectMeta: PatchMeta = {
  finalizers: { strategy: 'merge' },
  ownerReferences: { strategy: 'merge', key: 'uid' },
};

const conditions = { strategy: 'merge', key: 'type' } as const;

const container: PatchMeta = {
  ports: { strategy: 'merge', key: 'containerPort' },
  env: { strategy: 'merge', key: 'name' },
  volumeMounts: { strategy: 'merge', key: 'mountPath' },
  volumeDevices: { strategy: 'merge', key: 'devicePath' },
};

export const podSpecMeta: PatchMeta = {
  volumes: { strategy: 'merge,retainKeys', key: 'name' },
  initContainers: { strategy: 'merge', key: 'name', fields: container },
  containers: { strategy: 'merge', key: 'name', fields: container },
  ephemeralContainers: { strategy: 'merge', key: 'name', fields: container },
  imagePullSecrets: { strategy: 'merge', key: 'name' },
  hostAliases: { strategy: 'merge', key: 'ip' },
  topologySpreadConstraints: { strategy: 'merge', key: 'topologyKey' },
  resourceClaims: { strategy: 'merge,retainKeys', key: 'name' },
  schedulingGates: { strategy: 'merge', key: 'name' },
};

const podTemplate: PatchMeta = { metadata: { fields: objectMeta }, spec: { fields: podSpecMeta } };

export const patchMeta: Record<string, PatchMeta> = {
  Pod: {
    metadata: { fields: objectMeta },
    spec: { fields: podSpecMeta },
    status: {
      fields: {
        conditions,
        podIPs: { strategy: 'merge', key: 'ip' },
        hostIPs: { strategy: 'merge', key: 'ip' },
        resourceClaimStatuses: { strategy: 'merge,retainKeys', key: 'name' },
      },
    },
  },
  Node: {
    metadata: { fields: objectMeta },
    spec: { fields: { podCIDRs: { strategy: 'merge' } } },
    status: { fields: { conditions, addresses: { strategy: 'merge', key: 'type' } } },
  },
  Namespace: { metadata: { fields: objectMeta }, status: { fields: { conditions } } },
  Service: {
    metadata: { fields: objectMeta },
    spec: { fields: { ports: { strategy: 'merge', key: 'port' } } },
    status: { fields: { conditions } },
  },
  ServiceAccount: { metadata: { fields: objectMeta }, secrets: { strategy: 'merge', key: 'name' } },
  Deployment: {
    metadata: { fields: objectMeta },
    spec: { fields: { template: { fields: podTemplate }, strategy: { strategy: 'retainKeys' } } },
    status: { fields: { conditions } },
  },
  DaemonSet: {
    metadata: { fields: objectMeta },
    spec: { fields: { template: { fields: podTemplate } } },
    status: { fields: { conditions } },
  },
  CustomResourceDefinition: { metadata: { fields: objectMeta }, status: { fields: { conditions } } },
};

/** Kinds without list fields of their own still merge their metadata lists by key. */
export function patchMetaFor(kind: string): PatchMeta {
  return patchMeta[kind] ?? { metadata: { fields: objectMeta } };
}
