// The MultiNetworkPolicy CRD's openAPIV3Schema per version, as in crds/multi-networkpolicy.yaml without its
// descriptions (a test keeps the two equal), for validating objects where the CRD's schema did not run or
// cannot reach (the controller's checks before compiling). The kube extensions stay: they are the CRD's words.

const string = { type: 'string' } as const;
const strings = { type: 'array', items: string } as const;

const labelSelector = {
  type: 'object',
  'x-kubernetes-map-type': 'atomic',
  properties: {
    matchLabels: { type: 'object', additionalProperties: string },
    matchExpressions: {
      type: 'array',
      items: { type: 'object', required: ['key', 'operator'], properties: { key: string, operator: string, values: strings } },
    },
  },
} as const;

const peers = {
  type: 'array',
  items: {
    type: 'object',
    properties: {
      podSelector: labelSelector,
      namespaceSelector: labelSelector,
      ipBlock: { type: 'object', required: ['cidr'], properties: { cidr: string, except: strings } },
    },
  },
} as const;

/** metav1.Condition. */
const condition = {
  type: 'object',
  required: ['lastTransitionTime', 'message', 'reason', 'status', 'type'],
  properties: {
    type: { type: 'string', maxLength: 316, pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$' },
    status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
    observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
    lastTransitionTime: { type: 'string', format: 'date-time' },
    reason: { type: 'string', minLength: 1, maxLength: 1024, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$' },
    message: { type: 'string', maxLength: 32768 },
  },
} as const;

export type MnpSchemaVersion = 'v1beta1' | 'v1beta2';

/** The openAPIV3Schema of one served version: v1beta2 adds endPort to ports, nothing else. */
export function multiNetworkPolicySchema(version: MnpSchemaVersion): Record<string, unknown> {
  const port = {
    protocol: { type: 'string', enum: ['TCP', 'UDP', 'SCTP'] },
    port: { anyOf: [{ type: 'integer' }, { type: 'string' }], 'x-kubernetes-int-or-string': true },
    ...(version === 'v1beta2' ? { endPort: { type: 'integer', format: 'int32' } } : {}),
  };
  const ports = { type: 'array', items: { type: 'object', properties: port } };
  return {
    type: 'object',
    required: ['spec'],
    properties: {
      apiVersion: string,
      kind: string,
      metadata: { type: 'object' },
      spec: {
        type: 'object',
        required: ['podSelector'],
        properties: {
          podSelector: labelSelector,
          policyTypes: { type: 'array', items: { type: 'string', enum: ['Ingress', 'Egress'] } },
          ingress: { type: 'array', items: { type: 'object', properties: { ports, from: peers } } },
          egress: { type: 'array', items: { type: 'object', properties: { ports, to: peers } } },
        },
      },
      status: {
        type: 'object',
        properties: { conditions: { type: 'array', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'], items: condition } },
      },
    },
  };
}
