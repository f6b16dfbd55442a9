import { Ajv, type JSONSchemaType } from 'ajv';
import ipaddr from 'ipaddr.js';
import { readFileSync } from 'node:fs';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { parse as parseYaml } from 'yaml';

/** The cluster controller's configuration (the `controller.yaml` key of the seine-config ConfigMap). */
export interface ControllerConfig {
  /** Kubeconfig path; in-cluster service account when absent (`--kubeconfig` overrides). */
  kubeconfig?: string;
  /**
   * Allocate Node.spec.podCIDR for nodes without one. Leave it on only where kube-controller-manager runs with
   * `--allocate-node-cidrs=false`; two allocators would race.
   */
  allocateNodeCIDRs: boolean;
  /** The block node pod CIDRs are carved from; the agents' `clusterCIDR` must be the same. */
  clusterCIDR: string;
  /** Prefix length of each node's pod CIDR. */
  nodeCIDRMaskSize: number;
  leaderElection: {
    /** Off only for a single replica: two unelected controllers would both allocate. */
    enabled: boolean;
    /** Namespace of the Lease; default $POD_NAMESPACE (downward API), else kube-system. */
    namespace: string;
    leaseName: string;
    /** How long a lease holds without renewal before another replica may take it. */
    leaseDurationSeconds: number;
    /** The leader stops acting when it could not renew for this long. */
    renewDeadlineSeconds: number;
    /** Interval of acquire and renew attempts. */
    retryPeriodSeconds: number;
  };
  /** Port of the `/healthz`, `/livez`, `/readyz` and `/metrics` endpoint; 0 disables. */
  healthPort: number;
  /** Also serves the same endpoints on this unix socket (the lab relays it to the machine). */
  healthSocket?: string;
  /**
   * The policy channel: the leader computes NetworkPolicies and ClusterNetworkPolicies and streams each agent its
   * node's share over HTTPS, publishing its address and certificate in the ConfigMap seine-controller-endpoint
   * (in leaderElection.namespace).
   */
  policy: {
    enabled: boolean;
    /** Address the channel listens on. */
    bindAddress: string;
    /** TCP port; 0 picks a free one (the published endpoint says which). */
    port: number;
    /** Address agents connect to, and the certificate is made for; default $POD_IP, else the first non-internal IPv4. */
    advertiseAddress?: string;
    /** Users (as the API server's TokenReview names them) allowed to read shares; default the agents' ServiceAccount. */
    agentUsers: string[];
  };
}

/** The agents' ServiceAccount as a user name, in the controller's namespace. */
export const agentServiceAccountUser = (namespace: string): string => `system:serviceaccount:${namespace}:seine-agent`;

export const DEFAULT_CONTROLLER_CONFIG: ControllerConfig = {
  allocateNodeCIDRs: true,
  clusterCIDR: '10.244.0.0/16',
  nodeCIDRMaskSize: 24,
  leaderElection: {
    enabled: true,
    namespace: 'kube-system',
    leaseName: 'seine-controller',
    leaseDurationSeconds: 15,
    renewDeadlineSeconds: 10,
    retryPeriodSeconds: 2,
  },
  healthPort: 0,
  policy: { enabled: true, bindAddress: '0.0.0.0', port: 10349, agentUsers: [agentServiceAccountUser('kube-system')] },
};

/** The first non-internal IPv4 address of this host (where $POD_IP does not say which). */
export function firstExternalIPv4(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): string | undefined {
  for (const addrs of Object.values(interfaces)) {
    const a = addrs?.find((x) => x.family === 'IPv4' && !x.internal);
    if (a) return a.address;
  }
  return undefined;
}

const seconds = { type: 'number', exclusiveMinimum: 0, maximum: 3600 } as const;

export const schema: JSONSchemaType<ControllerConfig> = {
  type: 'object',
  description: "The cluster controller's configuration (the `controller.yaml` key of the seine-config ConfigMap).",
  additionalProperties: false,
  required: ['allocateNodeCIDRs', 'clusterCIDR', 'nodeCIDRMaskSize', 'leaderElection', 'healthPort', 'policy'],
  properties: {
    kubeconfig: { type: 'string', nullable: true, description: 'Path of a kubeconfig file; `--kubeconfig` overrides it. Left out: `$KUBECONFIG`, else the in-cluster service account, else `~/.kube/config`.' },
    allocateNodeCIDRs: {
      type: 'boolean',
      description: "Gives each Node without a `spec.podCIDR` one from `clusterCIDR`. Turn it off where kube-controller-manager allocates them (`--allocate-node-cidrs=true`): two allocators would race. The chained manifests (EKS, AKS) turn it off.",
    },
    clusterCIDR: { type: 'string', pattern: '^\\d{1,3}(\\.\\d{1,3}){3}/\\d{1,2}$', description: "The IPv4 block node pod CIDRs are carved from; the agents' `clusterCIDR` must be the same." },
    nodeCIDRMaskSize: { type: 'integer', minimum: 8, maximum: 30, description: "Prefix length of each node's pod CIDR; not shorter than `clusterCIDR`'s." },
    leaderElection: {
      type: 'object',
      description: 'Leader election between controller replicas, through a Lease: only the leader acts.',
      additionalProperties: false,
      required: ['enabled', 'namespace', 'leaseName', 'leaseDurationSeconds', 'renewDeadlineSeconds', 'retryPeriodSeconds'],
      properties: {
        enabled: { type: 'boolean', description: 'Off, the controller acts at once without a Lease: only for a single replica, as two unelected controllers would both allocate.' },
        namespace: {
          type: 'string',
          pattern: '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$',
          description: 'Namespace of the Lease, and of the seine-controller-endpoint ConfigMap the policy channel publishes. Left out: `$POD_NAMESPACE` (downward API), else `kube-system`.',
        },
        leaseName: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$', description: 'Name of the Lease.' },
        leaseDurationSeconds: { ...seconds, description: 'Seconds a lease holds without renewal before another replica may take it; must be more than `renewDeadlineSeconds`.' },
        renewDeadlineSeconds: { ...seconds, description: 'Seconds the leader goes on trying to renew before it stops acting; must be more than 1.2 × `retryPeriodSeconds`.' },
        retryPeriodSeconds: { ...seconds, description: 'Seconds between attempts to acquire or renew the lease.' },
      },
    },
    healthPort: { type: 'integer', minimum: 0, maximum: 65535, description: 'TCP port of the `/metrics`, `/healthz`, `/livez` and `/readyz` endpoints; 0 serves them on no port.' },
    healthSocket: { type: 'string', minLength: 1, nullable: true, description: 'Path of a unix socket that also serves the same endpoints (the lab relays it to the machine). Left out: no socket.' },
    policy: {
      type: 'object',
      description:
        "The policy computation and channel: the leader computes the network policies and streams each agent its node's share over HTTPS, publishing its address and certificate in the ConfigMap seine-controller-endpoint (in `leaderElection.namespace`).",
      additionalProperties: false,
      required: ['enabled', 'bindAddress', 'port', 'agentUsers'],
      properties: {
        enabled: { type: 'boolean', description: 'Runs the policy computation and channel (on the leader); off, nothing computes policies or serves them to the agents.' },
        bindAddress: { type: 'string', minLength: 1, description: 'IP address the channel listens on.' },
        port: { type: 'integer', minimum: 0, maximum: 65535, description: 'TCP port of the channel; 0 picks a free one (the published endpoint says which).' },
        advertiseAddress: {
          type: 'string',
          minLength: 1,
          nullable: true,
          description: "IP address or DNS name agents connect to, which the channel's certificate is made for. Left out: `$POD_IP` (downward API), else the host's first non-internal IPv4 address.",
        },
        agentUsers: {
          type: 'array',
          items: { type: 'string', minLength: 1 },
          minItems: 1,
          description: "Users allowed to read shares, as the API server's TokenReview names them. Left out: the seine-agent ServiceAccount of `leaderElection.namespace`.",
        },
      },
    },
  },
};

const validate = new Ajv({ allErrors: true }).compile(schema);

/** Thrown for an unusable configuration, naming every problem. */
export class ControllerConfigError extends Error {}

const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;

/** Problems ajv cannot express: a real CIDR, a subnet size that fits, timings that make election safe. */
function semanticProblems(c: ControllerConfig): string[] {
  const out: string[] = [];
  if (!ipaddr.IPv4.isValidCIDR(c.clusterCIDR)) out.push(`/clusterCIDR ${JSON.stringify(c.clusterCIDR)} is not an IPv4 CIDR`);
  else if (c.nodeCIDRMaskSize < ipaddr.IPv4.parseCIDR(c.clusterCIDR)[1]) out.push(`/nodeCIDRMaskSize /${c.nodeCIDRMaskSize} is larger than clusterCIDR ${c.clusterCIDR}`);
  const le = c.leaderElection;
  // The same rules as client-go: a leader must give up before its lease can expire for the others.
  if (le.leaseDurationSeconds <= le.renewDeadlineSeconds) out.push('/leaderElection leaseDurationSeconds must be greater than renewDeadlineSeconds');
  if (le.renewDeadlineSeconds <= 1.2 * le.retryPeriodSeconds) out.push('/leaderElection renewDeadlineSeconds must be greater than 1.2 × retryPeriodSeconds');
  const p = c.policy;
  if (!ipaddr.isValid(p.bindAddress)) out.push(`/policy/bindAddress ${JSON.stringify(p.bindAddress)} is not an IP address`);
  // The certificate is made for it: an IP address or a DNS name.
  if (p.advertiseAddress !== undefined && !ipaddr.isValid(p.advertiseAddress) && !DNS_NAME.test(p.advertiseAddress)) {
    out.push(`/policy/advertiseAddress ${JSON.stringify(p.advertiseAddress)} is neither an IP address nor a DNS name`);
  }
  return out;
}

/** Merges the file's values over the defaults and validates the result. */
export function parseControllerConfig(raw: unknown, env: NodeJS.ProcessEnv = process.env): ControllerConfig {
  if (raw !== undefined && raw !== null && (typeof raw !== 'object' || Array.isArray(raw))) throw new ControllerConfigError('controller config must be a mapping');
  const given = (raw ?? {}) as Partial<ControllerConfig>;
  for (const key of ['leaderElection', 'policy'] as const) {
    const v = given[key];
    if (v !== undefined && (typeof v !== 'object' || v === null || Array.isArray(v))) throw new ControllerConfigError(`invalid controller config: /${key} must be object`);
  }
  const leaderElection = {
    ...DEFAULT_CONTROLLER_CONFIG.leaderElection,
    namespace: env.POD_NAMESPACE || DEFAULT_CONTROLLER_CONFIG.leaderElection.namespace,
    ...(given.leaderElection ?? {}),
  };
  const merged: ControllerConfig = {
    ...DEFAULT_CONTROLLER_CONFIG,
    ...given,
    leaderElection,
    policy: {
      ...DEFAULT_CONTROLLER_CONFIG.policy,
      agentUsers: [agentServiceAccountUser(leaderElection.namespace)],
      ...(env.POD_IP ? { advertiseAddress: env.POD_IP } : {}),
      ...(given.policy ?? {}),
    },
  };
  if (!validate(merged)) {
    const problems = (validate.errors ?? []).map((e) => `${e.instancePath || '(root)'} ${e.message}${e.params && 'allowedValues' in e.params ? ` (${(e.params.allowedValues as string[]).join(', ')})` : ''}`);
    throw new ControllerConfigError(`invalid controller config: ${problems.join('; ')}`);
  }
  const problems = semanticProblems(merged);
  if (problems.length) throw new ControllerConfigError(`invalid controller config: ${problems.join('; ')}`);
  return merged;
}

export function loadControllerConfig(path: string, env: NodeJS.ProcessEnv = process.env): ControllerConfig {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ControllerConfigError(`cannot read controller config ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  return parseControllerConfig(raw, env);
}
