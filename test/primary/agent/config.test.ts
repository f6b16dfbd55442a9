import { ConfigError, parseAgentConfig } from '../../../src/primary/agent/config.js';

describe('agent config', () => {
  it('fills defaults and takes the node name from NODE_NAME', () => {
    const cfg = parseAgentConfig({ ovs: { datapathType: 'netdev' } }, { NODE_NAME: 'n1' });
    expect(cfg.nodeName).toBe('n1');
    expect(cfg.ovs).toEqual({ dbSocket: '/var/run/openvswitch/db.sock', rundir: '/var/run/openvswitch', datapathType: 'netdev', bridge: 'br-int' });
    expect(cfg.trafficEncapMode).toBe('encap');
    expect(cfg.tunnelType).toBe('vxlan');
  });

  it('names every problem of an invalid config', () => {
    const err = (() => {
      try {
        parseAgentConfig({ nodeName: 'n', trafficEncapMode: 'tunnel', mtu: 100, clusterCIDR: '10.0.0.0', extra: 1 }, {});
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.message).toMatch(/trafficEncapMode.*encap, noEncap/);
    expect(err!.message).toMatch(/\/mtu must be >= 576/);
    expect(err!.message).toMatch(/clusterCIDR must match pattern/);
    expect(err!.message).toMatch(/must NOT have additional properties/);
    expect(() => parseAgentConfig({}, {})).toThrow(/nodeName must NOT have fewer than 1 characters/);
    expect(() => parseAgentConfig('x', {})).toThrow(/must be a mapping/);
  });
});
