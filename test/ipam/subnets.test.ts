import { SubnetAllocator, addressInCidr, networkOf } from '../../src/ipam/subnets.js';

describe('subnet allocation', () => {
  it('hands out node subnets lowest-free first and reuses released ones', () => {
    const a = new SubnetAllocator('10.244.0.0/16', 24);
    expect(a.allocate()).toBe('10.244.0.0/24');
    expect(a.allocate()).toBe('10.244.1.0/24');
    a.occupy('10.244.2.0/24');
    expect(a.allocate()).toBe('10.244.3.0/24');
    a.release('10.244.1.0/24');
    expect(a.allocate()).toBe('10.244.1.0/24');
    expect(a.free).toBe(256 - 4);
  });

  it('reports exhaustion and rejects foreign subnets', () => {
    const a = new SubnetAllocator('10.0.0.0/30', 30);
    expect(a.allocate()).toBe('10.0.0.0/30');
    expect(() => a.allocate()).toThrow(/no free \/30 left in 10.0.0.0\/30/);
    expect(() => a.occupy('10.1.0.0/30')).toThrow(/not a subnet/);
    expect(() => new SubnetAllocator('10.0.0.0/24', 16)).toThrow(/does not fit/);
    expect(() => new SubnetAllocator('10.0.0.0/16', 24).occupy('10.0.0.128/24')).toThrow(/not a subnet/);
  });

  it('does address math', () => {
    expect(addressInCidr('172.28.0.0/24', 254)).toBe('172.28.0.254');
    expect(() => addressInCidr('172.28.0.0/24', 256)).toThrow(RangeError);
    expect(networkOf('10.1.2.3/24')).toBe('10.1.2.0/24');
  });
});
