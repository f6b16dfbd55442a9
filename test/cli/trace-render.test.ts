import { renderTrace, renderTraceList, traceSummaryRow } from '../../src/cli/trace-render.js';
import { TraceError, traceSpecFromArgs } from '../../src/cli/trace.js';
import type { Traceflow } from '../../src/traceflow/api/types.js';

const NOW = Date.parse('2026-12-04T10:05:00Z');
const CREATED = '2026-12-04T10:04:30Z' as unknown as Date;

/** client (worker-1) -> Service default/web, load balanced to web-1 on worker-2 through the tunnel. */
const delivered: Traceflow = {
  metadata: { name: 'trace-bq7xz', creationTimestamp: CREATED },
  spec: { source: { namespace: 'default', pod: 'client' }, destination: { service: 'web' }, packet: { protocol: 'TCP' }, timeoutSeconds: 20 },
  status: {
    phase: 'Succeeded',
    tag: 7,
    sourceNode: 'worker-1',
    readyNodes: ['worker-1', 'worker-2'],
    verdict: 'Delivered',
    packet: { sourceIP: '10.10.0.5', destinationIP: '10.96.0.10', protocol: 'TCP', sourcePort: 40123, destinationPort: 80, tcpFlags: 2, ttl: 64 },
    results: [
      {
        node: 'worker-1',
        role: 'Sender',
        observations: [
          { component: 'SpoofGuard', action: 'Forwarded', table: 'SpoofGuard' },
          { component: 'LoadBalancing', action: 'Translated', table: 'ServiceLB', translatedDestination: '10.10.1.7:8080' },
          { component: 'NetworkPolicy', action: 'Allowed', direction: 'Egress', table: 'EgressRule', policy: { kind: 'NetworkPolicy', namespace: 'default', name: 'client-egress', rule: 'egress-0' } },
          { component: 'Forwarding', action: 'Forwarded', table: 'L2ForwardingOut', outputPort: 'tun0', tunnelDestination: '192.168.0.3', peerNode: 'worker-2' },
        ],
      },
      {
        node: 'worker-2',
        role: 'Receiver',
        observations: [
          { component: 'Forwarding', action: 'Received', peerNode: 'worker-1' },
          { component: 'NetworkPolicy', action: 'Allowed', direction: 'Ingress', policy: { kind: 'NetworkPolicy', namespace: 'default', name: 'allow-web', rule: 'ingress-0' } },
          { component: 'Forwarding', action: 'Delivered', table: 'L2ForwardingOut', pod: 'default/web-1', outputPort: 'web-1-abc' },
        ],
      },
    ],
  },
};

const dropped: Traceflow = {
  metadata: { name: 'trace-dr0p2' },
  spec: { source: { namespace: 'default', pod: 'client' }, destination: { namespace: 'prod', pod: 'db-0' }, packet: { protocol: 'TCP', destinationPort: 5432 } },
  status: {
    phase: 'Succeeded',
    tag: 3,
    verdict: 'Dropped',
    packet: { sourceIP: '10.10.0.5', destinationIP: '10.10.0.9', protocol: 'TCP', sourcePort: 33000, destinationPort: 5432, ttl: 64 },
    results: [
      {
        node: 'worker-1',
        role: 'Sender',
        observations: [
          { component: 'SpoofGuard', action: 'Forwarded' },
          { component: 'NetworkPolicy', action: 'Allowed', direction: 'Egress', policy: { kind: 'ClusterNetworkPolicy', name: 'baseline', rule: 'egress-2' } },
          { component: 'NetworkPolicy', action: 'Dropped', direction: 'Ingress', table: 'IngressDefault', policy: { kind: 'NetworkPolicy', namespace: 'prod', name: 'deny-all', rule: 'isolation-ingress' } },
        ],
      },
    ],
  },
};

const toNode: Traceflow = {
  metadata: { name: 'trace-nd5x4' },
  spec: { source: { namespace: 'default', pod: 'client' }, destination: { ip: '203.0.113.9' }, packet: { protocol: 'ICMP' } },
  status: {
    phase: 'Succeeded',
    tag: 9,
    verdict: 'ForwardedToNode',
    packet: { sourceIP: '10.10.0.5', destinationIP: '203.0.113.9', protocol: 'ICMP', ttl: 64 },
    results: [
      {
        node: 'worker-1',
        role: 'Sender',
        observations: [
          { component: 'SpoofGuard', action: 'Forwarded' },
          { component: 'Forwarding', action: 'Forwarded', table: 'L3Forwarding', outputPort: 'seine-gw0', message: 'to the node\'s network stack' },
        ],
      },
    ],
  },
};

const failed: Traceflow = {
  metadata: { name: 'trace-f41l5' },
  spec: { source: { namespace: 'default', pod: 'ghost' }, destination: { pod: 'web-1' } },
  status: { phase: 'Failed', reason: 'SourceNotFound', message: 'pod default/ghost not found' },
};

const running: Traceflow = {
  metadata: { name: 'trace-rvn66', creationTimestamp: CREATED },
  spec: { source: { namespace: 'default', pod: 'client' }, destination: { namespace: 'kube-system', service: 'kube-dns' }, packet: { protocol: 'UDP', destinationPort: 53 } },
  status: { phase: 'Running', tag: 4, sourceNode: 'worker-1', packet: { sourceIP: '10.10.0.5', destinationIP: '10.96.0.10', protocol: 'UDP', sourcePort: 41000, destinationPort: 53, ttl: 64 } },
};

describe('renderTrace', () => {
  it('draws a delivered trace through a Service across two nodes', () => {
    const out = renderTrace(delivered);
    expect(out).toBe(
      [
        'default/client -> svc default/web: TCP 10.10.0.5:40123 -> 10.96.0.10:80, DSCP tag 7',
        'node worker-1 (Sender)',
        '├─ SpoofGuard      Forwarded [SpoofGuard]',
        '├─ LoadBalancing   Translated -> 10.10.1.7:8080 [ServiceLB]',
        '├─ NetworkPolicy   Allowed by NetworkPolicy default/client-egress rule egress-0 (Egress) [EgressRule]',
        '└─ Forwarding      Forwarded into tunnel to worker-2 (192.168.0.3) [L2ForwardingOut]',
        '│',
        'node worker-2 (Receiver)',
        '├─ Forwarding      Received from worker-1',
        '├─ NetworkPolicy   Allowed by NetworkPolicy default/allow-web rule ingress-0 (Ingress)',
        '└─ Forwarding      Delivered to pod default/web-1 (port web-1-abc) [L2ForwardingOut]',
        'Verdict: Delivered',
      ].join('\n'),
    );
    // Only plain ASCII and the box-drawing characters.
    expect(out).toMatch(/^[\x20-\x7e\n├└│─]*$/);
  });

  it('names the policy that dropped the packet', () => {
    const lines = renderTrace(dropped).split('\n');
    expect(lines[0]).toBe('default/client -> prod/db-0: TCP 10.10.0.5:33000 -> 10.10.0.9:5432, DSCP tag 3');
    expect(lines).toContain('├─ NetworkPolicy   Allowed by ClusterNetworkPolicy baseline rule egress-2 (Egress)');
    expect(lines).toContain('└─ NetworkPolicy   Dropped by NetworkPolicy prod/deny-all rule isolation-ingress (Ingress) [IngressDefault]');
    expect(lines.at(-1)).toBe('Verdict: Dropped by NetworkPolicy prod/deny-all rule isolation-ingress');
  });

  it('says where a drop without a policy happened', () => {
    const tf: Traceflow = {
      ...dropped,
      status: {
        ...dropped.status,
        results: [{ node: 'worker-1', role: 'Sender', observations: [{ component: 'Forwarding', action: 'Dropped', table: 'L3Forwarding', message: 'no route to 10.10.0.9' }] }],
      },
    };
    const lines = renderTrace(tf).split('\n');
    expect(lines).toContain('└─ Forwarding      Dropped [L3Forwarding]: no route to 10.10.0.9');
    expect(lines.at(-1)).toBe('Verdict: Dropped by Forwarding in table L3Forwarding: no route to 10.10.0.9');
  });

  it('draws a packet handed to the node (ICMP, no ports)', () => {
    expect(renderTrace(toNode).split('\n')).toEqual([
      'default/client -> 203.0.113.9: ICMP 10.10.0.5 -> 203.0.113.9, DSCP tag 9',
      'node worker-1 (Sender)',
      '├─ SpoofGuard      Forwarded',
      "└─ Forwarding      Forwarded to port seine-gw0 [L3Forwarding]: to the node's network stack",
      'Verdict: ForwardedToNode',
    ]);
  });

  it('says why a trace failed, with the packet as asked for', () => {
    expect(renderTrace(failed).split('\n')).toEqual(['default/ghost -> default/web-1: TCP', 'Failed (SourceNotFound): pod default/ghost not found']);
  });

  it('keeps what was observed before a failure', () => {
    const tf: Traceflow = { ...delivered, status: { ...delivered.status, phase: 'Failed', verdict: undefined, reason: 'Timeout', message: 'no verdict in 20 s', results: delivered.status!.results!.slice(0, 1) } };
    const lines = renderTrace(tf).split('\n');
    expect(lines[1]).toBe('node worker-1 (Sender)');
    expect(lines).not.toContain('│');
    expect(lines.at(-1)).toBe('Failed (Timeout): no verdict in 20 s');
  });

  it('shows a running or pending trace', () => {
    expect(renderTrace(running).split('\n')).toEqual([
      'default/client -> svc kube-system/kube-dns: UDP 10.10.0.5:41000 -> 10.96.0.10:53, DSCP tag 4',
      'node worker-1 (Sender)',
      '└─ (no observations yet)',
      'Running: waiting',
    ]);
    const pending: Traceflow = { metadata: { name: 't' }, spec: { source: { namespace: 'a', pod: 'p' }, destination: { ip: '10.0.0.1' }, packet: { protocol: 'UDP', destinationPort: 53, ttl: 3 } }, status: { phase: 'Pending', message: 'waiting for worker-2 to install the observation flows' } };
    expect(renderTrace(pending).split('\n')).toEqual(['a/p -> 10.0.0.1: UDP to port 53, TTL 3', 'Pending: waiting for worker-2 to install the observation flows']);
    expect(renderTrace({ ...pending, status: undefined }).split('\n').at(-1)).toBe('Pending: waiting');
  });

  it('shows a live trace: the match (a port left out as *), then the packet the pod sent', () => {
    const live: Traceflow = {
      ...delivered,
      spec: { ...delivered.spec, liveTraffic: true },
      status: {
        ...delivered.status,
        packet: { sourceIP: '10.10.0.5', destinationIP: '10.96.0.10', protocol: 'TCP', destinationPort: 80, ttl: 64 },
        capturedPacket: { sourceIP: '10.10.0.5', destinationIP: '10.96.0.10', protocol: 'TCP', sourcePort: 51234, destinationPort: 80, tcpFlags: 2, ttl: 64 },
      },
    };
    expect(renderTrace(live).split('\n').slice(0, 3)).toEqual([
      'default/client -> svc default/web: live traffic, TCP 10.10.0.5:* -> 10.96.0.10:80, DSCP tag 7',
      'Captured: TCP 10.10.0.5:51234 -> 10.96.0.10:80 (SYN)',
      'node worker-1 (Sender)',
    ]);
    const data = { ...live, status: { ...live.status, capturedPacket: { ...live.status!.capturedPacket!, tcpFlags: 0x18 } } };
    expect(renderTrace(data).split('\n')[1]).toBe('Captured: TCP 10.10.0.5:51234 -> 10.96.0.10:80, TCP flags 0x18');
  });

  it('draws a trace on a VLAN network: the network, out of the uplink toward the other node, in from it, delivered', () => {
    const tf: Traceflow = {
      metadata: { name: 'vlan', creationTimestamp: CREATED },
      spec: { source: { namespace: 'default', pod: 'client' }, destination: { pod: 'server' }, network: 'vlan100' },
      status: {
        phase: 'Succeeded',
        verdict: 'Delivered',
        tag: 2,
        network: { name: 'default/vlan100', type: 'vlan', bridge: 'br-vlan', vlan: 100, interface: 'net1', destinationNode: 'worker-2' },
        packet: { sourceIP: '10.100.0.5', destinationIP: '10.100.0.6', sourceMAC: '0a:00:00:00:00:05', destinationMAC: '0a:00:00:00:00:06', protocol: 'UDP', sourcePort: 40000, destinationPort: 53, ttl: 64 },
        results: [
          { node: 'worker-1', role: 'Sender', observations: [{ component: 'Forwarding', action: 'Forwarded', table: 'Normal', outputPort: 'eth1', peerNode: 'worker-2', message: 'out of the uplink, tagged VLAN 100' }] },
          {
            node: 'worker-2',
            role: 'Receiver',
            observations: [
              { component: 'Forwarding', action: 'Received', table: 'Classifier', peerNode: 'worker-1', message: 'from the uplink eth1, tagged VLAN 100' },
              { component: 'Forwarding', action: 'Delivered', table: 'Normal', outputPort: 'server-net1', pod: 'default/server', message: 'to net1 of the pod' },
            ],
          },
        ],
      },
    };
    expect(renderTrace(tf).split('\n')).toEqual([
      'default/client -> default/server: UDP 10.100.0.5:40000 -> 10.100.0.6:53, DSCP tag 2',
      'Network: default/vlan100 (VLAN 100, bridge br-vlan), from net1 to 0a:00:00:00:00:06',
      'node worker-1 (Sender)',
      '└─ Forwarding      Forwarded to port eth1, toward worker-2 [Normal]: out of the uplink, tagged VLAN 100',
      '│',
      'node worker-2 (Receiver)',
      '├─ Forwarding      Received from worker-1 [Classifier]: from the uplink eth1, tagged VLAN 100',
      '└─ Forwarding      Delivered to pod default/server (port server-net1) [Normal]: to net1 of the pod',
      'Verdict: Delivered',
    ]);
    // Out of a service chain on the network, toward the destination's node.
    const exit: Traceflow = { ...tf, status: { ...tf.status, results: [{ node: 'worker-1', role: 'Sender', observations: [{ component: 'Forwarding', action: 'Forwarded', table: 'ChainExit', outputPort: 'chain tunnel', peerNode: 'worker-2', message: "out of the chain, toward the destination pod's node" }] }] } };
    expect(renderTrace(exit).split('\n')).toContain("└─ Forwarding      Forwarded into the chain tunnel to worker-2 [ChainExit]: out of the chain, toward the destination pod's node");
    // Before the controller resolved it: the network as the spec names it.
    expect(renderTrace({ ...tf, status: { phase: 'Pending' } }).split('\n')[1]).toBe('Network: vlan100');
  });

  it('shows non-default TCP flags and TTL', () => {
    const tf: Traceflow = { ...delivered, status: { ...delivered.status, packet: { ...delivered.status!.packet!, tcpFlags: 0x12, ttl: 2 } } };
    expect(renderTrace(tf).split('\n')[0]).toBe('default/client -> svc default/web: TCP 10.10.0.5:40123 -> 10.96.0.10:80, TCP flags 0x12, TTL 2, DSCP tag 7');
  });
});

describe('trace list', () => {
  it('summarizes a trace in a row', () => {
    expect(traceSummaryRow(delivered, NOW)).toEqual(['trace-bq7xz', 'default/client', 'svc default/web', 'Succeeded', 'Delivered', '30s']);
    expect(traceSummaryRow(failed, NOW)).toEqual(['trace-f41l5', 'default/ghost', 'default/web-1', 'Failed', undefined, '<unknown>']);
  });

  it('renders the table sorted by name', () => {
    const lines = renderTraceList([running, delivered, dropped], NOW).split('\n');
    expect(lines[0]).toMatch(/^NAME\s+SOURCE\s+DESTINATION\s+PHASE\s+VERDICT\s+AGE$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(['trace-bq7xz', 'trace-dr0p2', 'trace-rvn66']);
    expect(lines[3]).toMatch(/^trace-rvn66\s+default\/client\s+svc kube-system\/kube-dns\s+Running\s+<none>\s+30s$/);
  });
});

describe('traceSpecFromArgs', () => {
  const spec = traceSpecFromArgs;
  const fails = (source: string, destination: string, opts = {}): string => {
    try {
      spec(source, destination, opts);
    } catch (e) {
      expect(e).toBeInstanceOf(TraceError);
      return (e as Error).message;
    }
    throw new Error(`no error for ${source} ${destination}`);
  };

  it('reads pods, Services and addresses', () => {
    expect(spec('default/client', 'prod/web-1')).toEqual({ source: { namespace: 'default', pod: 'client' }, destination: { namespace: 'prod', pod: 'web-1' }, packet: { protocol: 'TCP' }, timeoutSeconds: 20 });
    expect(spec('client', 'web-1').destination).toEqual({ pod: 'web-1' });
    expect(spec('client', 'svc/web').destination).toEqual({ service: 'web' });
    expect(spec('client', 'service/web').destination).toEqual({ service: 'web' });
    expect(spec('client', 'kube-system/svc/kube-dns').destination).toEqual({ namespace: 'kube-system', service: 'kube-dns' });
    expect(spec('client', '10.96.0.10').destination).toEqual({ ip: '10.96.0.10' });
    expect(spec('pod/client', 'prod/pod/db-0')).toMatchObject({ source: { namespace: 'default', pod: 'client' }, destination: { namespace: 'prod', pod: 'db-0' } });
  });

  it('takes the source namespace from -n, else the default one, else default', () => {
    expect(spec('client', 'web').source).toEqual({ namespace: 'default', pod: 'client' });
    expect(spec('client', 'web', { namespace: 'shop' }).source).toEqual({ namespace: 'shop', pod: 'client' });
    expect(spec('client', 'web', { defaultNamespace: 'ctx' }).source).toEqual({ namespace: 'ctx', pod: 'client' });
    expect(spec('shop/client', 'web', { namespace: 'shop', defaultNamespace: 'ctx' }).source).toEqual({ namespace: 'shop', pod: 'client' });
    expect(fails('shop/client', 'web', { namespace: 'other' })).toMatch(/namespace shop but --namespace says other/);
  });

  it('builds the packet from the options', () => {
    expect(spec('a/b', 'c/d', { protocol: 'udp', port: '53', sourcePort: '5353', ttl: '3', timeout: '60' })).toMatchObject({
      packet: { protocol: 'UDP', destinationPort: 53, sourcePort: 5353, ttl: 3 },
      timeoutSeconds: 60,
    });
    expect(spec('a/b', 'c/d', { protocol: 'TCP', tcpFlags: '18', port: 443 }).packet).toEqual({ protocol: 'TCP', tcpFlags: 18, destinationPort: 443 });
    expect(spec('a/b', '1.1.1.1', { protocol: 'ICMP' }).packet).toEqual({ protocol: 'ICMP' });
  });

  it('refuses bad references', () => {
    expect(fails('a/b/c', 'web')).toMatch(/invalid source pod reference "a\/b\/c"/);
    expect(fails('Client', 'web')).toMatch(/invalid pod reference "Client"/);
    expect(fails('default/', 'web')).toMatch(/invalid source pod reference/);
    expect(fails('svc/web', 'web')).toMatch(/the source must be a pod, not a Service/);
    expect(fails('10.0.0.1', 'web')).toMatch(/the source must be a pod .*not an address/);
    expect(fails('client', 'svc/Web_1')).toMatch(/invalid Service reference "svc\/Web_1"/);
    expect(fails('client', 'NS/web')).toMatch(/invalid namespace "NS"/);
    expect(fails('client', 'a/b/c/d')).toMatch(/invalid destination pod reference/);
    expect(fails('client', '')).toMatch(/the destination is empty/);
    expect(fails('client', 'web', { namespace: 'Bad' })).toMatch(/invalid namespace "Bad"/);
  });

  it('takes a secondary network, but no Service or live traffic on one', () => {
    expect(spec('client', 'server', { network: 'vlan100' }).network).toBe('vlan100');
    expect(spec('client', '10.100.0.6', { network: ' infra/vlan100 ' }).network).toBe('infra/vlan100');
    expect(spec('client', 'server')).not.toHaveProperty('network');
    expect(fails('client', 'server', { network: 'a/b/c' })).toMatch(/invalid --network "a\/b\/c": a NetworkAttachmentDefinition as NAME or NAMESPACE\/NAME/);
    expect(fails('client', 'server', { network: 'VLAN' })).toMatch(/invalid --network/);
    expect(fails('client', 'svc/web', { network: 'vlan100' })).toMatch(/Services are on the pod network/);
    expect(fails('client', 'server', { network: 'vlan100', live: true })).toMatch(/live traffic is traced on the pod network only/);
  });

  it('refuses bad addresses', () => {
    expect(fails('client', '10.0.0.300')).toMatch(/"10.0.0.300": not an IPv4 address/);
    expect(fails('client', '10.0.0')).toMatch(/not an IPv4 address/);
    expect(fails('client', '010.0.0.1')).toMatch(/not an IPv4 address/);
    expect(fails('client', '10.0.0.1:80')).toMatch(/the port with --port/);
    expect(fails('client', 'fd00::1')).toMatch(/only IPv4 addresses/);
  });

  it('refuses bad packet options', () => {
    expect(fails('a/b', 'c/d', { port: '0' })).toMatch(/invalid --port "0": a port number from 1 to 65535/);
    expect(fails('a/b', 'c/d', { port: '65536' })).toMatch(/invalid --port "65536"/);
    expect(fails('a/b', 'c/d', { port: '8o' })).toMatch(/invalid --port "8o"/);
    expect(fails('a/b', 'c/d', { sourcePort: '-1' })).toMatch(/invalid --source-port/);
    expect(fails('a/b', 'c/d', { ttl: '256' })).toMatch(/invalid --ttl "256"/);
    expect(fails('a/b', 'c/d', { tcpFlags: '300' })).toMatch(/invalid --tcp-flags/);
    expect(fails('a/b', 'c/d', { timeout: '0' })).toMatch(/invalid --timeout "0"/);
    expect(fails('a/b', 'c/d', { timeout: '301' })).toMatch(/invalid --timeout "301"/);
    expect(fails('a/b', 'c/d', { protocol: 'SCTP' })).toMatch(/invalid --protocol "SCTP": TCP, UDP or ICMP/);
    expect(fails('a/b', 'c/d', { protocol: 'ICMP', port: '80' })).toMatch(/--port is for TCP and UDP/);
    expect(fails('a/b', 'c/d', { protocol: 'icmp', sourcePort: '80' })).toMatch(/--source-port is for TCP and UDP/);
    expect(fails('a/b', 'c/d', { protocol: 'UDP', tcpFlags: '2' })).toMatch(/--tcp-flags is for TCP/);
    expect(fails('a/b', 'c/d', { live: true, tcpFlags: '2' })).toMatch(/--tcp-flags is for an injected packet/);
    expect(fails('a/b', 'c/d', { live: true, ttl: '9' })).toMatch(/--ttl is for an injected packet/);
  });

  it('asks for live traffic with --live, and only then', () => {
    expect(spec('a/b', 'c/d', { live: true, protocol: 'UDP', port: '53' })).toMatchObject({ liveTraffic: true, packet: { protocol: 'UDP', destinationPort: 53 } });
    expect(spec('a/b', 'c/d')).not.toHaveProperty('liveTraffic');
  });
});
