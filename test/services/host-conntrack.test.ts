import { deleteUntranslatedCommand, parseUdpFlows, staleNodePortFlows } from '../../src/services/host/conntrack.js';

// As `conntrack -L -p udp` prints them (conntrack-tools 1.4.7).
const LISTING = [
  'udp      17 27 src=192.0.2.20 dst=192.0.2.10 sport=40085 dport=30085 [UNREPLIED] src=192.0.2.10 dst=192.0.2.20 sport=30085 dport=40085 mark=0 use=1',
  'udp      17 117 src=192.0.2.20 dst=192.0.2.10 sport=40084 dport=30084 src=169.254.0.252 dst=10.10.0.1 sport=30084 dport=40084 [ASSURED] mark=0 use=1',
  'udp      17 25 src=10.10.0.5 dst=192.0.2.99 sport=5000 dport=30085 src=192.0.2.99 dst=192.0.2.10 sport=30085 dport=5000 mark=0 use=1',
  'udp      17 20 src=127.0.0.1 dst=127.0.0.1 sport=5001 dport=30085 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=30085 dport=5001 mark=0 use=1',
  'udp      17 29 src=192.0.2.21 dst=10.10.0.1 sport=41000 dport=30085 [UNREPLIED] src=10.10.0.1 dst=192.0.2.21 sport=30085 dport=41000 mark=0 zone=3 use=1',
  'conntrack v1.4.7 (conntrack-tools): 5 flow entries have been shown.',
].join('\n');

describe('untranslated UDP flows of new node ports', () => {
  it('reads the original destination and the reply source of each flow', () => {
    expect(parseUdpFlows(LISTING)).toEqual([
      { dst: '192.0.2.10', dport: 30085, replySrc: '192.0.2.10' },
      { dst: '192.0.2.10', dport: 30084, replySrc: '169.254.0.252' },
      { dst: '192.0.2.99', dport: 30085, replySrc: '192.0.2.99' },
      { dst: '127.0.0.1', dport: 30085, replySrc: '127.0.0.1' },
      { dst: '10.10.0.1', dport: 30085, replySrc: '10.10.0.1' },
    ]);
  });

  it("picks only untranslated flows to the node's own addresses on the new ports", () => {
    const local = new Set(['192.0.2.10', '10.10.0.1']);
    // Not 192.0.2.99 (forwarded through the node, maybe masqueraded: deleting it would break it), not loopback,
    // not the DNATed 30084 flow even if its port were new.
    expect(staleNodePortFlows(parseUdpFlows(LISTING), new Set([30085, 30084]), local)).toEqual([
      { dst: '192.0.2.10', dport: 30085 },
      { dst: '10.10.0.1', dport: 30085 },
    ]);
    expect(staleNodePortFlows(parseUdpFlows(LISTING), new Set([30086]), local)).toEqual([]);
  });

  it('deletes by destination, port and a reply from that same destination', () => {
    expect(deleteUntranslatedCommand({ dst: '192.0.2.10', dport: 30085 })).toEqual(['-D', '-p', 'udp', '--orig-dst', '192.0.2.10', '--orig-port-dst', '30085', '--reply-src', '192.0.2.10']);
  });
});
