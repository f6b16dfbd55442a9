import type { V1Pod, V1Service } from '@kubernetes/client-node';
import type { TraceflowSpec } from '../../src/traceflow/api/types.js';
import { isFailure, pickSourcePort, resolvePacket } from '../../src/traceflow/model/packet.js';

const pod = (ip: string | undefined, phase = 'Running', hostNetwork = false): V1Pod => ({ spec: { containers: [], hostNetwork }, status: { phase, ...(ip ? { podIP: ip, podIPs: [{ ip }] } : {}) } });
const svc = (clusterIP: string, ports: Array<{ port: number; protocol?: string }>): V1Service => ({ spec: { clusterIP, ports } });
const spec = (destination: TraceflowSpec['destination'], packet?: TraceflowSpec['packet']): TraceflowSpec => ({ source: { namespace: 'default', pod: 'client' }, destination, ...(packet ? { packet } : {}) });
const fixed = (): number => 0.5;

describe('the packet a trace injects', () => {
  it('to a pod: both pods\' addresses, a TCP SYN to port 80 from an ephemeral port, TTL 64', () => {
    expect(resolvePacket(spec({ pod: 'server' }), { source: pod('10.244.0.5'), destinationPod: pod('10.244.1.7') }, fixed)).toEqual({
      sourceIP: '10.244.0.5',
      destinationIP: '10.244.1.7',
      protocol: 'TCP',
      sourcePort: pickSourcePort(fixed),
      destinationPort: 80,
      tcpFlags: 2,
      ttl: 64,
    });
    expect(pickSourcePort(() => 0)).toBe(32768);
    expect(pickSourcePort(() => 0.9999999)).toBe(60999);
  });

  it('to a Service: its ClusterIP and its first port of the protocol, unless a port is given', () => {
    const s = svc('10.96.0.20', [{ port: 53, protocol: 'UDP' }, { port: 8443 }]);
    expect(resolvePacket(spec({ service: 'web' }), { source: pod('10.244.0.5'), service: s }, fixed)).toMatchObject({ destinationIP: '10.96.0.20', protocol: 'TCP', destinationPort: 8443 });
    expect(resolvePacket(spec({ service: 'web' }, { protocol: 'UDP' }), { source: pod('10.244.0.5'), service: s }, fixed)).toMatchObject({ protocol: 'UDP', destinationPort: 53 });
    expect(resolvePacket(spec({ service: 'web' }, { destinationPort: 9 }), { source: pod('10.244.0.5'), service: s }, fixed)).toMatchObject({ destinationPort: 9 });
  });

  it('to an address, ICMP: no ports or flags; headers as given', () => {
    expect(resolvePacket(spec({ ip: '192.0.2.1' }, { protocol: 'ICMP', ttl: 3 }), { source: pod('10.244.0.5') })).toEqual({ sourceIP: '10.244.0.5', destinationIP: '192.0.2.1', protocol: 'ICMP', ttl: 3 });
    expect(resolvePacket(spec({ ip: '192.0.2.1' }, { protocol: 'UDP', sourcePort: 1000, destinationPort: 2000 }), { source: pod('10.244.0.5') })).toEqual({ sourceIP: '10.244.0.5', destinationIP: '192.0.2.1', protocol: 'UDP', sourcePort: 1000, destinationPort: 2000, ttl: 64 });
  });

  it('for live traffic: what the pod\'s packet must match, only the ports asked for (none by default, not a Service\'s)', () => {
    const live = (destination: TraceflowSpec['destination'], packet?: TraceflowSpec['packet']): TraceflowSpec => ({ ...spec(destination, packet), liveTraffic: true });
    const s = svc('10.96.0.20', [{ port: 8443 }]);
    expect(resolvePacket(live({ service: 'web' }), { source: pod('10.244.0.5'), service: s }, fixed)).toEqual({ sourceIP: '10.244.0.5', destinationIP: '10.96.0.20', protocol: 'TCP', ttl: 64 });
    expect(resolvePacket(live({ pod: 'server' }, { protocol: 'UDP', destinationPort: 8081, tcpFlags: 2 }), { source: pod('10.244.0.5'), destinationPod: pod('10.244.1.7') }, fixed)).toEqual({
      sourceIP: '10.244.0.5',
      destinationIP: '10.244.1.7',
      protocol: 'UDP',
      destinationPort: 8081,
      ttl: 64,
    });
    expect(resolvePacket(live({ ip: '192.0.2.1' }, { protocol: 'ICMP' }), { source: pod('10.244.0.5') })).toEqual({ sourceIP: '10.244.0.5', destinationIP: '192.0.2.1', protocol: 'ICMP', ttl: 64 });
  });

  it('says why a trace cannot start', () => {
    const reasons = [
      resolvePacket(spec({ ip: '192.0.2.1' }), {}),
      resolvePacket(spec({ ip: '192.0.2.1' }), { source: pod(undefined, 'Pending') }),
      resolvePacket(spec({ ip: '192.0.2.1' }), { source: pod('192.168.0.2', 'Running', true) }),
      resolvePacket(spec({ pod: 'gone' }), { source: pod('10.244.0.5') }),
      resolvePacket(spec({ pod: 'new' }), { source: pod('10.244.0.5'), destinationPod: pod(undefined, 'Pending') }),
      resolvePacket(spec({ service: 'headless' }), { source: pod('10.244.0.5'), service: svc('None', [{ port: 80 }]) }),
      resolvePacket(spec({ service: 'dns' }), { source: pod('10.244.0.5'), service: svc('10.96.0.10', [{ port: 53, protocol: 'UDP' }]) }),
    ].map((r) => (isFailure(r) ? r.reason : 'resolved'));
    expect(reasons).toEqual(['SourceNotFound', 'SourceNotRunning', 'SourceHostNetwork', 'DestinationNotFound', 'DestinationHasNoAddress', 'ServiceHasNoClusterIP', 'ServiceHasNoPort']);
    const r = resolvePacket(spec({ pod: 'gone', namespace: 'web' }), { source: pod('10.244.0.5') });
    expect(isFailure(r) && r.message).toBe('pod web/gone not found');
  });
});
