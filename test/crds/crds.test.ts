import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { CRD_NAMES, CRDS_DIR, installCrds, startCluster, type Cluster } from './helpers.js';

// The CRDs in crds/, applied with the stock kubectl to the embedded API server: they install, serve the
// names the spec gives, accept valid objects and refuse invalid ones.

// Objects straight from kubectl's JSON; the checks poke at them freely.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const nad = (name: string, spec?: unknown): string =>
  JSON.stringify({ apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name, namespace: 'default' }, ...(spec === undefined ? {} : { spec }) });

const pool = (name: string, spec: unknown): string => JSON.stringify({ apiVersion: 'crd.seine.dev/v1alpha1', kind: 'IPPool', metadata: { name }, spec });

const VALID_SPEC = {
  ipRanges: [{ cidr: '10.10.0.0/25' }, { start: '10.10.0.200', end: '10.10.0.250' }],
  exclude: ['10.10.0.5', '10.10.0.16/28'],
  subnetInfo: { gateway: '10.10.0.1', prefixLength: 24, vlan: 100 },
};

/** kubectl's table as records, cut at the header's column starts (cells may be empty). */
function rows(text: string): Array<Record<string, string>> {
  const [header, ...lines] = text.replace(/\n$/, '').split('\n');
  const cols = [...header!.matchAll(/\S+/g)].map((m) => ({ name: m[0], at: m.index }));
  return lines.map((l) => Object.fromEntries(cols.map((c, i) => [c.name, l.slice(c.at, cols[i + 1]?.at ?? l.length).trim()])));
}

describe('CRDs', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster();
  });
  afterAll(async () => {
    await c?.close();
  });

  const ok = async (args: string[], input?: string): Promise<string> => {
    const r = await c.kubectl(args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };
  /** kubectl's error text for an object that must be refused. */
  const refused = async (input: string): Promise<string> => {
    const r = await c.kubectl(['apply', '-f', '-'], input);
    expect([r.code, r.stdout]).toEqual([1, '']);
    return r.stderr;
  };

  it('define exactly the spec names, and install with kubectl apply', async () => {
    const docs = CRD_NAMES.map((n) => parseYaml(readFileSync(join(CRDS_DIR, n.startsWith('ippools') ? 'ippool.yaml' : 'network-attachment-definition.yaml'), 'utf8')) as Json);
    expect(docs[0].spec).toMatchObject({
      group: 'k8s.cni.cncf.io',
      scope: 'Namespaced',
      names: { kind: 'NetworkAttachmentDefinition', plural: 'network-attachment-definitions', singular: 'network-attachment-definition', shortNames: ['net-attach-def', 'nad'] },
      versions: [{ name: 'v1', served: true, storage: true }],
    });
    expect(docs[0].spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.config.type).toBe('string');
    expect(docs[0].spec.versions[0].schema.openAPIV3Schema.properties.spec.required).toBeUndefined();
    expect(docs[1].spec).toMatchObject({ group: 'crd.seine.dev', scope: 'Cluster', names: { kind: 'IPPool', plural: 'ippools' }, versions: [{ name: 'v1alpha1', subresources: { status: {} } }] });

    const out = await installCrds(c);
    expect(out.trim().split('\n').sort()).toEqual(CRD_NAMES.map((n) => `customresourcedefinition.apiextensions.k8s.io/${n} created`).sort());
    // Applying again changes nothing on the server (kubectl diff exits 0 when there is no difference).
    const diff = await c.kubectl(['diff', '-f', CRDS_DIR]);
    expect([diff.code, diff.stdout, diff.stderr]).toEqual([0, '', '']);
    const resources = await ok(['api-resources', '--api-group=k8s.cni.cncf.io', '--no-headers']);
    expect(resources).toMatch(/^network-attachment-definitions\s+net-attach-def,nad\s+k8s.cni.cncf.io\/v1\s+true\s+NetworkAttachmentDefinition/m);
    expect(await ok(['api-resources', '--api-group=crd.seine.dev', '--no-headers'])).toMatch(/^ippools\s+ipp\s+crd.seine.dev\/v1alpha1\s+false\s+IPPool/m);
  });

  it('NetworkAttachmentDefinition: config is a string and optional, as the spec says', async () => {
    const config = JSON.stringify({ cniVersion: '1.0.0', type: 'seine', networkType: 'vlan', vlan: 100, ipam: { type: 'seine', ippools: ['vlan100'] } });
    expect(await ok(['apply', '-f', '-'], nad('vlan100', { config }))).toMatch(/^networkattachmentdefinition.k8s.cni.cncf.io\/vlan100 created$/m);
    expect(await ok(['apply', '-f', '-'], nad('from-node-file', {}))).toMatch(/created/);
    expect(await ok(['apply', '-f', '-'], nad('no-spec'))).toMatch(/created/);
    const got = JSON.parse(await ok(['get', 'nad', 'vlan100', '-o', 'json']));
    expect(got.spec.config).toBe(config);
    expect(await ok(['get', 'net-attach-def', '-o', 'name'])).toBe(
      ['from-node-file', 'no-spec', 'vlan100'].map((n) => `networkattachmentdefinition.k8s.cni.cncf.io/${n}`).join('\n') + '\n',
    );
    expect(await refused(nad('bad', { config: { type: 'macvlan' } }))).toMatch(/spec\.config/);
  });

  it('IPPool: a valid pool is stored as given and listed with its columns', async () => {
    expect(await ok(['apply', '-f', '-'], pool('vlan100', VALID_SPEC))).toMatch(/ippool.crd.seine.dev\/vlan100 created/);
    expect(await ok(['apply', '-f', '-'], pool('plain', { ipRanges: [{ start: '192.168.5.10', end: '192.168.5.20' }], subnetInfo: { gateway: '192.168.5.1', prefixLength: 24 } }))).toMatch(/created/);
    const got = JSON.parse(await ok(['get', 'ippool', 'vlan100', '-o', 'json']));
    expect(got.spec).toEqual(VALID_SPEC);
    expect(got.metadata.namespace).toBeUndefined();
    const table = rows(await ok(['get', 'ipp']));
    expect(Object.keys(table[0]!)).toEqual(['NAME', 'GATEWAY', 'PREFIX', 'VLAN', 'TOTAL', 'USED', 'AGE']);
    expect(table.map(({ AGE: _age, ...r }) => r)).toEqual([
      { NAME: 'plain', GATEWAY: '192.168.5.1', PREFIX: '24', VLAN: '', TOTAL: '', USED: '' },
      { NAME: 'vlan100', GATEWAY: '10.10.0.1', PREFIX: '24', VLAN: '100', TOTAL: '', USED: '' },
    ]);
  });

  it('IPPool: status goes through the status subresource, validated, and feeds the columns', async () => {
    const base = JSON.parse(await ok(['get', 'ippool', 'plain', '-o', 'json']));
    const owner = { podNamespace: 'default', podName: 'p1', podUID: 'u1', containerID: 'c1', interface: 'net1', node: 'n1' };
    const allocations = [{ ip: '192.168.5.10', owner, allocatedAt: '2025-01-01T00:00:00Z', requested: true }];
    const updated = c.api.resource('crd.seine.dev/v1alpha1', 'ippools').updateStatus({ ...base, status: { allocations, usage: { total: 11, used: 1 } } }) as Json;
    expect(updated.status.allocations).toEqual(allocations);
    expect(rows(await ok(['get', 'ippool', 'plain']))[0]).toMatchObject({ NAME: 'plain', TOTAL: '11', USED: '1' });
    // Status is not writable through the main resource.
    expect(await ok(['apply', '-f', '-'], JSON.stringify({ ...JSON.parse(pool('plain', base.spec)), status: { usage: { total: 99, used: 99 } } }))).toMatch(/configured|unchanged/);
    expect(JSON.parse(await ok(['get', 'ippool', 'plain', '-o', 'json'])).status.usage).toEqual({ total: 11, used: 1 });
    const pools = c.api.resource('crd.seine.dev/v1alpha1', 'ippools');
    const bad = (status: unknown): string => {
      try {
        pools.updateStatus({ ...pools.get('plain'), status });
        return 'accepted';
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(bad({ allocations: [{ ...allocations[0], ip: '192.168.5.300' }] })).toMatch(/status.allocations\[0\].ip/);
    expect(bad({ allocations: [{ ip: '192.168.5.11', allocatedAt: '2025-01-01T00:00:00Z' }] })).toMatch(/status.allocations\[0\].owner: Required value/);
    expect(bad({ allocations: [{ ...allocations[0], owner: { ...owner, containerID: '' } }] })).toMatch(/containerID/);
    expect(bad({ allocations: [{ ...allocations[0], allocatedAt: 'yesterday' }] })).toMatch(/allocatedAt/);
    expect(bad({ usage: { total: -1, used: 0 } })).toMatch(/status.usage.total/);
  });

  it.each([
    ['VLAN 4095', { ...VALID_SPEC, subnetInfo: { gateway: '10.10.0.1', prefixLength: 24, vlan: 4095 } }, /spec.subnetInfo.vlan: Invalid value: 4095: spec.subnetInfo.vlan in body should be less than or equal to 4094/],
    ['negative VLAN', { ...VALID_SPEC, subnetInfo: { gateway: '10.10.0.1', prefixLength: 24, vlan: -1 } }, /spec.subnetInfo.vlan/],
    ['prefix length 33', { ...VALID_SPEC, subnetInfo: { gateway: '10.10.0.1', prefixLength: 33 } }, /spec.subnetInfo.prefixLength: Invalid value: 33: spec.subnetInfo.prefixLength in body should be less than or equal to 32/],
    ['prefix length 0', { ...VALID_SPEC, subnetInfo: { gateway: '10.10.0.1', prefixLength: 0 } }, /spec.subnetInfo.prefixLength/],
    ['bad CIDR', { ...VALID_SPEC, ipRanges: [{ cidr: '10.10.0.0/33' }] }, /spec.ipRanges\[0\].cidr: Invalid value: "10.10.0.0\/33"/],
    ['CIDR without prefix', { ...VALID_SPEC, ipRanges: [{ cidr: '10.10.0.0' }] }, /spec.ipRanges\[0\].cidr/],
    ['octet above 255', { ...VALID_SPEC, ipRanges: [{ start: '10.10.0.256', end: '10.10.0.9' }] }, /spec.ipRanges\[0\].start/],
    ['leading zero', { ...VALID_SPEC, ipRanges: [{ start: '10.10.0.01', end: '10.10.0.9' }] }, /spec.ipRanges\[0\].start/],
    ['empty ranges', { ...VALID_SPEC, ipRanges: [] }, /spec.ipRanges: Invalid value: .*should have at least 1 items/],
    ['no ranges', { subnetInfo: VALID_SPEC.subnetInfo }, /spec.ipRanges: Required value/],
    ['range with start only', { ...VALID_SPEC, ipRanges: [{ start: '10.10.0.2' }] }, /spec.ipRanges\[0\]: Invalid value: .*must match exactly one schema in oneOf/],
    ['range with cidr and start', { ...VALID_SPEC, ipRanges: [{ cidr: '10.10.0.0/28', start: '10.10.0.2' }] }, /spec.ipRanges\[0\]: Invalid value: .*oneOf/],
    ['empty range', { ...VALID_SPEC, ipRanges: [{}] }, /spec.ipRanges\[0\]: Invalid value: .*oneOf/],
    ['IPv6 gateway (IPv4 only for now)', { ...VALID_SPEC, subnetInfo: { gateway: 'fd00::1', prefixLength: 24 } }, /spec.subnetInfo.gateway/],
    ['no subnetInfo', { ipRanges: VALID_SPEC.ipRanges }, /spec.subnetInfo: Required value/],
    ['no gateway', { ...VALID_SPEC, subnetInfo: { prefixLength: 24 } }, /spec.subnetInfo.gateway: Required value/],
    ['bad exclusion', { ...VALID_SPEC, exclude: ['10.10.0.0/40'] }, /spec.exclude\[0\]/],
  ])('IPPool: refuses %s', async (_what, spec, pattern) => {
    expect(await refused(pool('bad', spec))).toMatch(pattern);
  });

  it('IPPool: a missing spec is refused, and nothing invalid was stored', async () => {
    expect(await refused(JSON.stringify({ apiVersion: 'crd.seine.dev/v1alpha1', kind: 'IPPool', metadata: { name: 'bad' } }))).toMatch(/spec: Required value/);
    expect((await ok(['get', 'ippools', '-o', 'name'])).trim().split('\n')).toEqual(['ippool.crd.seine.dev/plain', 'ippool.crd.seine.dev/vlan100']);
  });
});
