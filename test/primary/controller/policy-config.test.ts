// The controller config's policy channel key: defaults follow the controller's namespace and $POD_IP, and
// addresses that cannot be bound to or put in a certificate are refused.
import { ControllerConfigError, firstExternalIPv4, parseControllerConfig } from '../../../src/primary/controller/config.js';

describe('controller config: policy', () => {
  it('defaults: on, every address, port 10349, the agents\' ServiceAccount of the controller\'s namespace, $POD_IP advertised', () => {
    expect(parseControllerConfig(undefined, {}).policy).toEqual({ enabled: true, bindAddress: '0.0.0.0', port: 10349, agentUsers: ['system:serviceaccount:kube-system:seine-agent'] });
    expect(parseControllerConfig({}, { POD_NAMESPACE: 'seine-system', POD_IP: '192.0.2.10' }).policy).toEqual({
      enabled: true,
      bindAddress: '0.0.0.0',
      port: 10349,
      advertiseAddress: '192.0.2.10',
      agentUsers: ['system:serviceaccount:seine-system:seine-agent'],
    });
    const given = parseControllerConfig({ policy: { port: 0, advertiseAddress: 'seine-controller.example', agentUsers: ['a', 'b'] } }, { POD_IP: '192.0.2.10' }).policy;
    expect(given).toEqual({ enabled: true, bindAddress: '0.0.0.0', port: 0, advertiseAddress: 'seine-controller.example', agentUsers: ['a', 'b'] });
  });

  it.each([
    [{ policy: 'on' }, '/policy must be object'],
    [{ policy: { port: 70000 } }, '/policy/port must be <= 65535'],
    [{ policy: { agentUsers: [] } }, '/policy/agentUsers must NOT have fewer than 1 items'],
    [{ policy: { bindAddress: 'everywhere' } }, '/policy/bindAddress "everywhere" is not an IP address'],
    [{ policy: { advertiseAddress: 'Not A Name' } }, '/policy/advertiseAddress "Not A Name" is neither an IP address nor a DNS name'],
    [{ policy: { enable: true } }, 'must NOT have additional properties'],
  ])('rejects %j', (raw, problem) => {
    expect(() => parseControllerConfig(raw, {})).toThrow(ControllerConfigError);
    expect(() => parseControllerConfig(raw, {})).toThrow(problem);
  });

  it('falls back to the first non-internal IPv4 address', () => {
    const lo = { address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' } as const;
    const v6 = { address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:01', internal: false, cidr: 'fe80::1/64', scopeid: 2 } as const;
    const eth = { address: '192.0.2.5', netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:01', internal: false, cidr: '192.0.2.5/24' } as const;
    expect(firstExternalIPv4({ lo: [lo], eth0: [v6, eth] })).toBe('192.0.2.5');
    expect(firstExternalIPv4({ lo: [lo] })).toBeUndefined();
  });
});
