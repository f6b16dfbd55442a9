// k8s.cni.cncf.io MultiNetworkPolicy compiled into the policy model: NetworkPolicy's semantics once per network its
// policy-for annotation names, each a policy of its own whose groups are the pods' interfaces on that network.
import type { ErrorObject } from 'ajv';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import type { V1NetworkPolicySpec } from '@kubernetes/client-node';
// NetworkPolicy's own validation (kube's ValidateNetworkPolicySpec, words and all), the lab's API server's too.
import { validateNetworkPolicySpec } from '../../k8s/networkpolicy-validation.js';
import { isDnsLabel, isDnsSubdomain, problems } from '../../secondary/annotations/validation.js';
import { MNP_VERSION, POLICY_FOR_ANNOTATION, type MultiNetworkPolicy } from '../api/multinetworkpolicy.js';
import { multiNetworkPolicySchema, type MnpSchemaVersion } from '../api/multinetworkpolicy-schema.js';
import { networkPolicyUid } from './network-uid.js';
import { compileNetworkPolicySpec } from './networkpolicy.js';
import type { Compiled, PolicyRef } from './types.js';

/**
 * The networks of a policy-for annotation, as sorted, distinct "namespace/name"s ("name" alone: the policy's
 * namespace), and the items that are no network. Absent or empty: no network (the policy applies to nothing).
 */
export function parsePolicyFor(value: string | undefined, policyNamespace: string): { networks: string[]; problems: string[] } {
  const networks = new Set<string>();
  const bad: string[] = [];
  for (const raw of (value ?? '').split(',')) {
    const item = raw.trim();
    if (!item) continue;
    const parts = item.split('/').map((p) => p.trim());
    const at = `${POLICY_FOR_ANNOTATION}: ${JSON.stringify(item)}`;
    if (parts.length > 2) {
      bad.push(`${at} is not a network: write "namespace/name" or "name" (a NetworkAttachmentDefinition of the policy's namespace)`);
      continue;
    }
    const [namespace, name] = parts.length === 2 ? [parts[0]!, parts[1]!] : [policyNamespace, parts[0]!];
    if (!isDnsLabel(namespace)) bad.push(`${at}: ${JSON.stringify(namespace)} is not a valid namespace name (RFC 1123 label: lowercase letters, digits and "-", at most 63)`);
    else if (!isDnsSubdomain(name)) bad.push(`${at}: ${JSON.stringify(name)} is not a valid NetworkAttachmentDefinition name (RFC 1123 subdomain: lowercase letters, digits, "-" and ".", at most 253)`);
    else networks.add(`${namespace}/${name}`);
  }
  return { networks: [...networks].sort(), problems: bad };
}

/** The policy's part on `network` (NAD "namespace/name", one of parsePolicyFor's). */
export function compileMultiNetworkPolicy(mnp: MultiNetworkPolicy, network: string): Compiled {
  const namespace = mnp.metadata.namespace ?? 'default';
  const ref: PolicyRef = { kind: 'MultiNetworkPolicy', namespace, name: mnp.metadata.name ?? '', uid: networkPolicyUid(mnp.metadata.uid ?? '', network), network, generation: mnp.metadata.generation ?? 0 };
  return compileNetworkPolicySpec(namespace, mnp.spec as V1NetworkPolicySpec, ref, network);
}

let validators: Record<MnpSchemaVersion, ReturnType<Ajv['compile']>> | undefined;

/** The CRD's schemas, compiled on first use (the agent, which never validates, does not pay for them). */
function schemaValidators(): Record<MnpSchemaVersion, ReturnType<Ajv['compile']>> {
  if (validators) return validators;
  const ajv = new Ajv({ allErrors: true, verbose: true, allowUnionTypes: true, strict: true, logger: false });
  addFormats.default(ajv, ['date-time']);
  // Kube's numeric widths, which kube does not range-check either.
  for (const f of ['int32', 'int64']) ajv.addFormat(f, true);
  ajv.addVocabulary(['x-kubernetes-int-or-string', 'x-kubernetes-map-type', 'x-kubernetes-list-type', 'x-kubernetes-list-map-keys']);
  validators = { v1beta1: ajv.compile(multiNetworkPolicySchema('v1beta1')), v1beta2: ajv.compile(multiNetworkPolicySchema('v1beta2')) };
  return validators;
}

/** Schema errors, an int-or-string's anyOf said as the type it wants rather than as its two failed branches. */
function schemaProblems(errors: readonly ErrorObject[]): string[] {
  const anyOf = errors.filter((e) => e.keyword === 'anyOf');
  const kept = errors
    .filter((e) => !anyOf.some((a) => e.schemaPath.startsWith(`${a.schemaPath}/`)))
    .map((e): ErrorObject => (e.keyword === 'anyOf' ? { ...e, keyword: 'type', params: { type: ['integer', 'string'] } } : e));
  return problems(kept);
}

/**
 * What is wrong with a MultiNetworkPolicy object, each naming its field; empty when it is fine. The CRD's schema
 * of the object's version (v1beta2 when it names none), then NetworkPolicy's own rules (peers, CIDRs and their
 * excepts, ports and endPort, label selectors). The policy-for annotation is parsePolicyFor's.
 */
export function validateMultiNetworkPolicy(obj: unknown): string[] {
  const apiVersion = (obj as { apiVersion?: unknown } | null)?.apiVersion;
  const version: MnpSchemaVersion = typeof apiVersion === 'string' && apiVersion.endsWith(`/${MNP_VERSION}`) ? 'v1beta1' : 'v1beta2';
  const validate = schemaValidators()[version];
  if (!validate(obj)) return schemaProblems(validate.errors ?? []);
  const spec = (obj as MultiNetworkPolicy).spec as unknown as Record<string, unknown>;
  return validateNetworkPolicySpec(spec, { allowInvalidLabelValues: false, existingCIDRs: new Set() }).map((c) => `${c.field ?? 'spec'}: ${c.message ?? 'invalid'}`);
}
