import { Ajv, type JSONSchemaType } from 'ajv';
import ipaddr from 'ipaddr.js';
import { readFileSync } from 'node:fs';
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
  /** Health endpoint (`/healthz`, `/readyz`); 0 disables. */
  healthPort: number;
}

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
};

const seconds = { type: 'number', exclusiveMinimum: 0, maximum: 3600 } as const;

const schema: JSONSchemaType<ControllerConfig> = {
  type: 'object',
  additionalProperties: false,
  required: ['allocateNodeCIDRs', 'clusterCIDR', 'nodeCIDRMaskSize', 'leaderElection', 'healthPort'],
  properties: {
    kubeconfig: { type: 'string', nullable: true },
    allocateNodeCIDRs: { type: 'boolean' },
    clusterCIDR: { type: 'string', pattern: '^\\d{1,3}(\\.\\d{1,3}){3}/\\d{1,2}$' },
    nodeCIDRMaskSize: { type: 'integer', minimum: 8, maximum: 30 },
    leaderElection: {
      type: 'object',
      additionalProperties: false,
      required: ['enabled', 'namespace', 'leaseName', 'leaseDurationSeconds', 'renewDeadlineSeconds', 'retryPeriodSeconds'],
      properties: {
        enabled: { type: 'boolean' },
        namespace: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$' },
        leaseName: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$' },
        leaseDurationSeconds: seconds,
        renewDeadlineSeconds: seconds,
        retryPeriodSeconds: seconds,
      },
    },
    healthPort: { type: 'integer', minimum: 0, maximum: 65535 },
  },
};

const validate = new Ajv({ allErrors: true }).compile(schema);

/** Thrown for an unusable configuration, naming every problem. */
export class ControllerConfigError extends Error {}

/** Problems ajv cannot express: a real CIDR, a subnet size that fits, timings that make election safe. */
function semanticProblems(c: ControllerConfig): string[] {
  const out: string[] = [];
  if (!ipaddr.IPv4.isValidCIDR(c.clusterCIDR)) out.push(`/clusterCIDR ${JSON.stringify(c.clusterCIDR)} is not an IPv4 CIDR`);
  else if (c.nodeCIDRMaskSize < ipaddr.IPv4.parseCIDR(c.clusterCIDR)[1]) out.push(`/nodeCIDRMaskSize /${c.nodeCIDRMaskSize} is larger than clusterCIDR ${c.clusterCIDR}`);
  const le = c.leaderElection;
  // The same rules as client-go: a leader must give up before its lease can expire for the others.
  if (le.leaseDurationSeconds <= le.renewDeadlineSeconds) out.push('/leaderElection leaseDurationSeconds must be greater than renewDeadlineSeconds');
  if (le.renewDeadlineSeconds <= 1.2 * le.retryPeriodSeconds) out.push('/leaderElection renewDeadlineSeconds must be greater than 1.2 × retryPeriodSeconds');
  return out;
}

/** Merges the file's values over the defaults and validates the result. */
export function parseControllerConfig(raw: unknown, env: NodeJS.ProcessEnv = process.env): ControllerConfig {
  if (raw !== undefined && raw !== null && (typeof raw !== 'object' || Array.isArray(raw))) throw new ControllerConfigError('controller config must be a mapping');
  const given = (raw ?? {}) as Partial<ControllerConfig>;
  if (given.leaderElection !== undefined && (typeof given.leaderElection !== 'object' || given.leaderElection === null || Array.isArray(given.leaderElection))) {
    throw new ControllerConfigError('invalid controller config: /leaderElection must be object');
  }
  const merged: ControllerConfig = {
    ...DEFAULT_CONTROLLER_CONFIG,
    ...given,
    leaderElection: {
      ...DEFAULT_CONTROLLER_CONFIG.leaderElection,
      namespace: env.POD_NAMESPACE || DEFAULT_CONTROLLER_CONFIG.leaderElection.namespace,
      ...(given.leaderElection ?? {}),
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
