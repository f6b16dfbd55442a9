import { attachmentEnv, buildCniArgs, cniArgsRecord, k8sCniArgs, parseCniArgs, validateContainerId, validateIfName, validateNetns, validateNetworkName } from '../../src/cni/args.js';
import { CniCode, CniError } from '../../src/cni/errors.js';

function codeOf(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof CniError ? e.code : -1;
  }
  return undefined;
}

describe('CNI_ARGS', () => {
  it('builds the Kubernetes form with IgnoreUnknown first, in order', () => {
    const s = buildCniArgs(k8sCniArgs({ namespace: 'default', name: 'web-0', infraContainerId: 'abc123', uid: '6f1c-42' }));
    expect(s).toBe('IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=6f1c-42');
    expect(k8sCniArgs({ namespace: 'n', name: 'p', infraContainerId: 'c' })).toHaveLength(3);
  });

  it('builds from a record, without IgnoreUnknown when asked, and never twice', () => {
    expect(buildCniArgs({ A: '1', B: '' }, { ignoreUnknown: false })).toBe('A=1;B=');
    expect(buildCniArgs([['IgnoreUnknown', 'true'], ['A', '1']])).toBe('IgnoreUnknown=true;A=1');
    expect(buildCniArgs({})).toBe('IgnoreUnknown=1');
  });

  it('refuses keys and values that would break the wire format (code 4)', () => {
    expect(codeOf(() => buildCniArgs({ 'A;B': '1' }))).toBe(CniCode.InvalidEnvironment);
    expect(codeOf(() => buildCniArgs({ A: 'x=y' }))).toBe(CniCode.InvalidEnvironment);
    expect(codeOf(() => buildCniArgs({ '': 'x' }))).toBe(CniCode.InvalidEnvironment);
  });

  it('parses pairs in order, skips empty segments, and round-trips', () => {
    expect(parseCniArgs('')).toEqual([]);
    expect(parseCniArgs('IgnoreUnknown=1;K8S_POD_NAME=web-0;')).toEqual([
      ['IgnoreUnknown', '1'],
      ['K8S_POD_NAME', 'web-0'],
    ]);
    const pairs: Array<[string, string]> = [['X', '1'], ['Y', '']];
    expect(parseCniArgs(buildCniArgs(pairs, { ignoreUnknown: false }))).toEqual(pairs);
    expect(cniArgsRecord('A=1;B=2;A=3')).toEqual({ A: '3', B: '2' });
  });

  it('refuses malformed pairs and control characters (code 4)', () => {
    for (const bad of ['A=1\n', 'A\u0000=1', 'A=\u007f', 'A=\r']) expect(codeOf(() => parseCniArgs(bad))).toBe(CniCode.InvalidEnvironment);
    expect(codeOf(() => buildCniArgs({ A: 'x\ny' }))).toBe(CniCode.InvalidEnvironment);
    expect(codeOf(() => parseCniArgs('A'))).toBe(CniCode.InvalidEnvironment);
    expect(codeOf(() => parseCniArgs('A=1=2'))).toBe(CniCode.InvalidEnvironment);
    expect(codeOf(() => parseCniArgs('=1'))).toBe(CniCode.InvalidEnvironment);
  });
});

describe('invocation argument rules', () => {
  it('container IDs: empty is code 3, bad characters code 4', () => {
    expect(codeOf(() => validateContainerId('3f6940ab5ab4_x.y-z'))).toBeUndefined();
    expect(codeOf(() => validateContainerId(''))).toBe(CniCode.UnknownContainer);
    expect(codeOf(() => validateContainerId('-lead'))).toBe(CniCode.InvalidEnvironment);
    expect(codeOf(() => validateContainerId('a/b'))).toBe(CniCode.InvalidEnvironment);
  });

  it('interface names follow the Linux rules (code 4)', () => {
    expect(codeOf(() => validateIfName('eth0'))).toBeUndefined();
    expect(codeOf(() => validateIfName('a23456789012345'))).toBeUndefined();
    for (const bad of ['', '.', '..', 'a234567890123456', 'a/b', 'a:b', 'a b', 'a\u0001b', 'a\u007f']) {
      expect(codeOf(() => validateIfName(bad))).toBe(CniCode.InvalidEnvironment);
    }
  });

  it('interface names are counted in bytes, as the kernel does (IFNAMSIZ)', () => {
    expect(codeOf(() => validateIfName('éééééee'))).toBeUndefined();
    expect(codeOf(() => validateIfName('éééééééé'))).toBe(CniCode.InvalidEnvironment);
  });

  it('network namespace paths: absolute, no control characters (code 4); empty is left to the command', () => {
    for (const ok of ['', '/var/run/netns/cni-1', '/proc/42/ns/net', '/run/netns/with space']) expect(codeOf(() => validateNetns(ok))).toBeUndefined();
    for (const bad of ['netns', '/run/netns/a\nb', '/run/netns/\u0000', '/run/\u001b[0m']) expect(codeOf(() => validateNetns(bad))).toBe(CniCode.InvalidEnvironment);
  });

  it('attachmentEnv checks all four and returns them with the parsed pairs', () => {
    const env = { CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/c1', CNI_IFNAME: 'eth0', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=p' };
    expect(attachmentEnv(env)).toEqual({ containerId: 'c1', netns: '/run/netns/c1', ifname: 'eth0', args: env.CNI_ARGS, argPairs: [['IgnoreUnknown', '1'], ['K8S_POD_NAME', 'p']] });
    expect(attachmentEnv({ ...env, CNI_NETNS: undefined, CNI_ARGS: undefined })).toMatchObject({ netns: '', args: '', argPairs: [] });
    expect(codeOf(() => attachmentEnv({ ...env, CNI_NETNS: 'x\n' }))).toBe(CniCode.InvalidEnvironment);
  });

  it('network names (code 7)', () => {
    expect(codeOf(() => validateNetworkName('seine-net_1.a'))).toBeUndefined();
    expect(codeOf(() => validateNetworkName('../x'))).toBe(CniCode.InvalidNetworkConfig);
  });
});
