import type { V1DaemonSet } from '@kubernetes/client-node';
import { awsPolicyAgentEnabled, awsRulesScript, cloudOf } from '../../../src/chaining/cnimode/cloud.js';

const awsNode = (containers: NonNullable<NonNullable<V1DaemonSet['spec']>['template']['spec']>['containers']): V1DaemonSet => ({
  spec: { selector: {}, template: { spec: { containers } } },
});

describe('the clouds Seine runs chained after', () => {
  it('tells the cloud from the primary plugins', () => {
    expect(cloudOf(['aws-cni', 'egress-cni', 'portmap'])).toBe('eks');
    expect(cloudOf(['azure-vnet', 'portmap'])).toBe('aks');
    expect(cloudOf(['bridge', 'portmap'])).toBe('generic');
  });

  it("finds the AWS VPC CNI's network policy agent enabled by flag or environment, and only then", () => {
    expect(awsPolicyAgentEnabled(undefined)).toBeUndefined();
    expect(awsPolicyAgentEnabled(awsNode([{ name: 'aws-node', image: 'x' }, { name: 'aws-eks-nodeagent', image: 'y', args: ['--enable-network-policy=false'] }]))).toBeUndefined();
    expect(awsPolicyAgentEnabled(awsNode([{ name: 'aws-node', image: 'x' }, { name: 'aws-eks-nodeagent', image: 'y', args: ['--enable-ipv6=false', '--enable-network-policy=true'] }]))).toMatch(/aws-eks-nodeagent.*--enable-network-policy=true/);
    expect(awsPolicyAgentEnabled(awsNode([{ name: 'aws-node', image: 'x', env: [{ name: 'ENABLE_NETWORK_POLICY', value: 'true' }, { name: 'NETWORK_POLICY_ENFORCING_MODE', value: 'strict' }] }]))).toMatch(/ENABLE_NETWORK_POLICY=true \(NETWORK_POLICY_ENFORCING_MODE=strict\)/);
  });

  it("copies the AWS connmark rules for the gateway, and keeps the VPC CNI's SNAT off traffic into OVS", () => {
    const script = awsRulesScript('seine-gw0', true);
    expect(script).toContain('-A SEINE-PREROUTING -i seine-gw0 -m comment --comment "Seine: AWS, primary ENI" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80');
    expect(script).toContain('-j AWS-CONNMARK-CHAIN-0');
    expect(script).toContain('-A SEINE-POSTROUTING -o seine-gw0 -m comment --comment "Seine: no AWS SNAT into OVS" -j ACCEPT');
    // Without aws-node's chain there is nothing to jump to.
    expect(awsRulesScript('seine-gw0', false)).not.toContain('AWS-CONNMARK-CHAIN-0');
  });
});
