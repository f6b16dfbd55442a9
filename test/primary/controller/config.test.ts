import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControllerConfigError, DEFAULT_CONTROLLER_CONFIG, loadControllerConfig, parseControllerConfig } from '../../../src/primary/controller/config.js';
import { defaultIdentity } from '../../../src/primary/controller/leader.js';

describe('controller config', () => {
  it('defaults: 10.244.0.0/16 in /24s, a 15/10/2 s lease in kube-system', () => {
    expect(parseControllerConfig(undefined, {})).toEqual(DEFAULT_CONTROLLER_CONFIG);
    expect(DEFAULT_CONTROLLER_CONFIG).toMatchObject({
      clusterCIDR: '10.244.0.0/16',
      nodeCIDRMaskSize: 24,
      leaderElection: { namespace: 'kube-system', leaseName: 'seine-controller', leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 },
    });
  });

  it('takes the lease namespace from $POD_NAMESPACE unless the file names one, and merges leaderElection', () => {
    expect(parseControllerConfig({}, { POD_NAMESPACE: 'seine-system' }).leaderElection.namespace).toBe('seine-system');
    const c = parseControllerConfig({ leaderElection: { namespace: 'net', leaseDurationSeconds: 30, renewDeadlineSeconds: 20 } }, { POD_NAMESPACE: 'seine-system' });
    expect(c.leaderElection).toEqual({ ...DEFAULT_CONTROLLER_CONFIG.leaderElection, namespace: 'net', leaseDurationSeconds: 30, renewDeadlineSeconds: 20 });
  });

  it.each([
    [{ clusterCIDR: '10.244.0.0' }, '/clusterCIDR must match pattern'],
    [{ clusterCIDR: '10.300.0.0/16' }, 'is not an IPv4 CIDR'],
    [{ clusterCIDR: '10.0.0.0/16', nodeCIDRMaskSize: 12 }, '/nodeCIDRMaskSize /12 is larger than clusterCIDR 10.0.0.0/16'],
    [{ nodeCIDRMaskSize: 31 }, '/nodeCIDRMaskSize must be <= 30'],
    [{ leaderElection: { leaseDurationSeconds: 10 } }, 'leaseDurationSeconds must be greater than renewDeadlineSeconds'],
    [{ leaderElection: { retryPeriodSeconds: 9 } }, 'renewDeadlineSeconds must be greater than 1.2 × retryPeriodSeconds'],
    [{ leaderElection: { leaseName: 'Seine' } }, '/leaderElection/leaseName must match pattern'],
    [{ leaderElection: 'yes' }, '/leaderElection must be object'],
    [{ clusterCidr: '10.0.0.0/8' }, 'must NOT have additional properties'],
    [[1], 'must be a mapping'],
  ])('rejects %j', (raw, problem) => {
    expect(() => parseControllerConfig(raw, {})).toThrow(ControllerConfigError);
    expect(() => parseControllerConfig(raw, {})).toThrow(problem);
  });

  it('loads YAML files and names the file when it cannot', () => {
    const dir = mkdtempSync(join(tmpdir(), 'seine-ctlcfg-'));
    try {
      writeFileSync(join(dir, 'c.yaml'), 'clusterCIDR: 10.32.0.0/12\nnodeCIDRMaskSize: 22\n');
      expect(loadControllerConfig(join(dir, 'c.yaml'), {})).toMatchObject({ clusterCIDR: '10.32.0.0/12', nodeCIDRMaskSize: 22 });
      expect(() => loadControllerConfig(join(dir, 'missing.yaml'), {})).toThrow(/cannot read controller config .*missing.yaml/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the lease identity is the pod name, else hostname and pid', () => {
    expect(defaultIdentity({ POD_NAME: 'seine-controller-7d9f-abcde' }, 'host1', 42)).toBe('seine-controller-7d9f-abcde');
    expect(defaultIdentity({}, 'host1', 42)).toBe('host1_42');
  });
});
