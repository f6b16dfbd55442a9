import { installCrds, startCluster, type Cluster } from './helpers.js';

// The Traceflow CRD (crds/traceflow.yaml), applied with the stock kubectl to the embedded API server, which
// enforces its schema, defaults and CEL rules as kube-apiserver does: what a user may create, and the refusal
// they read otherwise.

// Objects straight from kubectl's JSON.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const tf = (name: string, spec: Json): string => JSON.stringify({ apiVersion: 'crd.seine.dev/v1alpha1', kind: 'Traceflow', metadata: { name }, spec });
const SOURCE = { namespace: 'default', pod: 'client' };

describe('Traceflow CRD', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster();
    await installCrds(c);
  }, 60_000);
  afterAll(async () => {
    await c?.close();
  });

  const apply = (input: string): ReturnType<Cluster['kubectl']> => c.kubectl(['apply', '-f', '-'], input);
  const get = async (name: string): Promise<Json> => JSON.parse((await c.kubectl(['get', 'tf', name, '-o', 'json'])).stdout);

  it('takes a trace to a pod, a Service or an address, with the packet defaults filled in', async () => {
    for (const [name, destination] of [
      ['to-pod', { pod: 'server' }],
      ['to-svc', { namespace: 'web', service: 'frontend' }],
      ['to-ip', { ip: '10.96.0.10' }],
    ] as const) {
      const r = await apply(tf(name, { source: SOURCE, destination }));
      expect([r.code, r.stderr]).toEqual([0, '']);
    }
    const t = await get('to-pod');
    expect(t.spec.packet ?? {}).toEqual({});
    expect(t.spec.timeoutSeconds).toBe(20);
    const withPacket = await apply(tf('udp', { source: SOURCE, destination: { ip: '8.8.8.8' }, packet: { protocol: 'UDP', destinationPort: 53 } }));
    expect(withPacket.code).toBe(0);
    expect((await get('udp')).spec.packet).toEqual({ protocol: 'UDP', destinationPort: 53, tcpFlags: 2, ttl: 64 });
    // On a secondary network, by name or namespace/name.
    for (const [name, network] of [['on-vlan', 'vlan100'], ['on-blue', 'other/blue']] as const) {
      const r = await apply(tf(name, { source: SOURCE, destination: { pod: 'server' }, network }));
      expect([r.code, r.stderr]).toEqual([0, '']);
    }
    expect((await get('on-blue')).spec.network).toBe('other/blue');
    expect((await c.kubectl(['get', 'traceflows', '--no-headers'])).stdout.trim().split('\n')).toHaveLength(6);
  });

  it('refuses what cannot be traced, saying why', async () => {
    const cases: Array<[string, Json, RegExp]> = [
      ['two destinations', { source: SOURCE, destination: { pod: 'a', ip: '10.0.0.1' } }, /exactly one of pod, service or ip/],
      ['no destination', { source: SOURCE, destination: {} }, /exactly one of pod, service or ip/],
      ['a namespace with an address', { source: SOURCE, destination: { namespace: 'x', ip: '10.0.0.1' } }, /namespace is for a pod or a Service destination/],
      ['ports on ICMP', { source: SOURCE, destination: { ip: '10.0.0.1' }, packet: { protocol: 'ICMP', destinationPort: 1 } }, /ports are for TCP and UDP packets only/],
      ['an address that is not IPv4', { source: SOURCE, destination: { ip: '10.0.0.256' } }, /spec\.destination\.ip/],
      ['no source pod', { source: { namespace: 'default' }, destination: { ip: '10.0.0.1' } }, /spec\.source\.pod: Required value/],
      ['a protocol not traced', { source: SOURCE, destination: { ip: '10.0.0.1' }, packet: { protocol: 'SCTP' } }, /Unsupported value: "SCTP"/],
      ['a Service on a secondary network', { source: SOURCE, destination: { service: 'web' }, network: 'vlan100' }, /Services are on the pod network/],
      ['live traffic on a secondary network', { source: SOURCE, destination: { pod: 'server' }, network: 'vlan100', liveTraffic: true }, /live traffic is traced on the pod network only/],
      ['a network that is no NAD name', { source: SOURCE, destination: { pod: 'server' }, network: 'a/b/c' }, /spec\.network/],
      ['a timeout too long', { source: SOURCE, destination: { ip: '10.0.0.1' }, timeoutSeconds: 3600 }, /spec\.timeoutSeconds/],
    ];
    for (const [what, spec, message] of cases) {
      const r = await apply(tf('bad', spec));
      expect({ what, code: r.code, refused: message.test(r.stderr) ? 'as expected' : r.stderr }).toEqual({ what, code: 1, refused: 'as expected' });
    }
    expect((await c.kubectl(['get', 'tf', 'bad'])).code).toBe(1);
  });

  it('cannot be changed once made', async () => {
    expect((await apply(tf('fixed', { source: SOURCE, destination: { pod: 'server' } }))).code).toBe(0);
    const r = await apply(tf('fixed', { source: SOURCE, destination: { pod: 'other' } }));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/a Traceflow cannot be changed; create another one/);
  });
});
