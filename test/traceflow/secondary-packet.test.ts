// The packet and network of a trace on a secondary network, resolved from the NAD and the pods' network-status (pure).
import type { V1Pod } from '@kubernetes/client-node';
import type { TraceflowSpec } from '../../src/traceflow/api/types.js';
import { pickSourcePort } from '../../src/traceflow/model/packet.js';
import { networkRef, resolveSecondaryPacket } from '../../src/traceflow/model/secondary.js';
import type { NetworkAttachmentDefinition } from '../../src/secondary/nad/index.js';

const fixed = (): number => 0.5;
const STATUS = 'k8s.v1.cni.cncf.io/network-status';

function pod(name: string, node: string, status: object[] | string | undefined, ip = '10.244.0.5'): V1Pod {
  return {
    metadata: { name, namespace: 'default', ...(status !== undefined ? { annotations: { [STATUS]: typeof status === 'string' ? status : JSON.stringify(status) } } : {}) },
    spec: { nodeName: node, containers: [] },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
  };
}
const nad = (name: string, config: object | string): NetworkAttachmentDefinition => ({ metadata: { name, namespace: 'default' }, spec: { config: typeof config === 'string' ? config : JSON.stringify(config) } });
const VLAN = nad('vlan100', { cniVersion: '1.0.0', type: 'seine', networkType: 'vlan', vlan: 100, ipam: { type: 'seine', ippools: ['p'] } });
const BLUE = nad('blue', { cniVersion: '1.0.0', type: 'seine', networkType: 'overlay', vni: 5001, ipam: { type: 'seine', ippools: ['b'] } });

const on = (network: string, ifname: string, ip: string, mac: string): object => ({ name: network, interface: ifname, ips: [ip], mac });
const client = pod('client', 'node-a', [{ name: 'seine', interface: 'eth0', ips: ['10.244.0.5'], default: true }, on('default/vlan100', 'net1', '10.100.0.5', '0A:00:00:00:00:05')]);
const server = pod('server', 'node-b', [{ name: 'seine', interface: 'eth0', ips: ['10.244.1.6'], default: true }, on('default/vlan100', 'net1', '10.100.0.6', '0a:00:00:00:00:06')], '10.244.1.6');
const spec = (destination: TraceflowSpec['destination'], network = 'vlan100', packet?: TraceflowSpec['packet']): TraceflowSpec => ({ source: { namespace: 'default', pod: 'client' }, destination, network, ...(packet ? { packet } : {}) });

describe('a trace on a secondary network', () => {
  it('names its NAD by name in the source\'s namespace, or namespace/name', () => {
    expect(networkRef(spec({ pod: 'server' }, 'vlan100'))).toEqual({ namespace: 'default', name: 'vlan100' });
    expect(networkRef(spec({ pod: 'server' }, 'infra/vlan100'))).toEqual({ namespace: 'infra', name: 'vlan100' });
  });

  it('to a pod: the addresses and MACs of both pods\' interfaces on the network, the packet\'s defaults, the VLAN and the destination\'s node', () => {
    expect(resolveSecondaryPacket(spec({ pod: 'server' }), { source: client, destinationPod: server, nad: VLAN }, fixed)).toEqual({
      packet: { sourceIP: '10.100.0.5', destinationIP: '10.100.0.6', sourceMAC: '0a:00:00:00:00:05', destinationMAC: '0a:00:00:00:00:06', protocol: 'TCP', sourcePort: pickSourcePort(fixed), destinationPort: 80, tcpFlags: 2, ttl: 64 },
      network: { name: 'default/vlan100', type: 'vlan', bridge: 'br-vlan', vlan: 100, interface: 'net1', destinationNode: 'node-b' },
    });
  });

  it('to an address: the MAC and node of the pod whose interface on the network has it; none when no pod has it', () => {
    const byIp = resolveSecondaryPacket(spec({ ip: '10.100.0.6' }, 'vlan100', { protocol: 'ICMP' }), { source: client, nad: VLAN, pods: [client, server] });
    expect(byIp).toEqual({ packet: expect.objectContaining({ destinationIP: '10.100.0.6', destinationMAC: '0a:00:00:00:00:06', protocol: 'ICMP' }), network: expect.objectContaining({ destinationNode: 'node-b' }) });
    // The server's pod-network address is not on vlan100.
    const nobody = resolveSecondaryPacket(spec({ ip: '10.244.1.6' }), { source: client, nad: VLAN, pods: [client, server] });
    if (!('packet' in nobody)) throw new Error(`not resolved: ${nobody.message}`);
    expect(nobody.packet.destinationMAC).toBeUndefined();
    expect(nobody.network.destinationNode).toBeUndefined();
  });

  it('fails, saying why, for what cannot be traced on the network', () => {
    const reason = (r: ReturnType<typeof resolveSecondaryPacket>): string => ('reason' in r ? `${r.reason}: ${r.message}` : 'resolved');
    expect(reason(resolveSecondaryPacket(spec({ pod: 'server' }), { source: client, destinationPod: server }))).toBe('NetworkNotFound: NetworkAttachmentDefinition default/vlan100 not found');
    const macvlan = nad('vlan100', { cniVersion: '1.0.0', type: 'macvlan', master: 'eth0' });
    expect(reason(resolveSecondaryPacket(spec({ pod: 'server' }), { source: client, destinationPod: server, nad: macvlan }))).toMatch(/^NetworkNotTraceable: default\/vlan100 is not a Seine VLAN or overlay network/);
    expect(reason(resolveSecondaryPacket(spec({ pod: 'server' }), { source: client, destinationPod: server, nad: nad('vlan100', '{not json') }))).toMatch(/^NetworkNotTraceable: NetworkAttachmentDefinition default\/vlan100 is not valid/);
    expect(reason(resolveSecondaryPacket(spec({ pod: 'server' }, 'blue'), { source: client, destinationPod: server, nad: BLUE }))).toMatch(/^SourceNotAttached: pod default\/client has no interface with an IPv4 address on default\/blue/);
    const plain = pod('plain', 'node-b', undefined);
    expect(reason(resolveSecondaryPacket(spec({ pod: 'plain' }), { source: client, destinationPod: plain, nad: VLAN }))).toMatch(/^DestinationNotAttached: pod default\/plain/);
    expect(reason(resolveSecondaryPacket(spec({ pod: 'gone' }), { source: client, nad: VLAN }))).toBe('DestinationNotFound: pod default/gone not found');
    expect(reason(resolveSecondaryPacket(spec({ pod: 'server' }), { destinationPod: server, nad: VLAN }))).toMatch(/^SourceNotFound/);
    // A network-status that cannot be read is no interface.
    expect(reason(resolveSecondaryPacket(spec({ pod: 'server' }), { source: pod('client', 'node-a', '[{'), destinationPod: server, nad: VLAN }))).toMatch(/^SourceNotAttached/);
  });
});
