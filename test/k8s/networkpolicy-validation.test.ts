// kube's NetworkPolicy spec validation called directly, as the controller calls it for MultiNetworkPolicy (the lab
// API server's tests cover the same rules end to end through kubectl).
import { describe, expect, it } from '@jest/globals';
import { networkPolicyValidationOptions, validateNetworkPolicySpec } from '../../src/k8s/networkpolicy-validation.js';

const lines = (spec: Record<string, unknown>, oldSpec?: unknown): string[] =>
  validateNetworkPolicySpec(spec, networkPolicyValidationOptions(oldSpec)).map((c) => `${c.field}: ${c.message}`);

describe('validateNetworkPolicySpec', () => {
  it('accepts a valid spec', () => {
    expect(lines({ podSelector: { matchLabels: { app: 'db' } }, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }], ports: [{ port: 'http' }] }] })).toEqual([]);
  });

  it("reports with kube's field paths and words", () => {
    expect(
      lines({
        podSelector: { matchExpressions: [{ key: 'app', operator: 'In' }] },
        ingress: [{ from: [{}], ports: [{ port: 80, endPort: 79 }] }],
        egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.1.0.0/24'] } }] }],
        policyTypes: ['Sideways'],
      }),
    ).toEqual([
      "spec.podSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
      'spec.ingress[0].ports[0].endPort: Invalid value: 79: must be greater than or equal to `port`',
      'spec.ingress[0].from[0]: Required value: must specify a peer',
      'spec.egress[0].to[0].ipBlock.except[0]: Invalid value: "10.1.0.0/24": must be a strict subset of `cidr`',
      'spec.policyTypes[0]: Unsupported value: "Sideways": supported values: "Ingress", "Egress"',
    ]);
  });

  it('lets an update keep what the old spec already had wrong, and nothing more', () => {
    const spec = { podSelector: { matchExpressions: [{ key: 'a', operator: 'In', values: ['-bad-'] }] }, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/33' } }] }] };
    expect(lines(spec)).toHaveLength(2);
    expect(lines(spec, spec)).toEqual([]);
    expect(lines({ ...spec, egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/34' } }] }] }, spec)).toEqual([
      'spec.egress[0].to[0].ipBlock.cidr: Invalid value: "10.0.0.0/34": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)',
    ]);
  });
});
