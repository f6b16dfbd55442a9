import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseConfList } from '../../src/cni/conf.js';
import { CniCode, CniError } from '../../src/cni/errors.js';
import { generateValidators } from '../../src/cni/schema/generate.js';
import { gcAttachments, MAX_JSON_DEPTH, parseJson, readablePath, resultProblems, validateNetConf, validateResult, validateVersionResult } from '../../src/cni/schema/validate.js';
import type { NetConf } from '../../src/cni/types.js';
import { importGraph } from './helpers.js';

function caught(fn: () => unknown): CniError {
  try {
    fn();
  } catch (e) {
    if (e instanceof CniError) return e;
    throw e;
  }
  throw new Error('expected a CniError');
}

const SRC = resolve('src/cni');

describe('network configuration schema', () => {
  it('accepts a plugin config with plugin-specific keys and a prevResult', () => {
    const conf = {
      cniVersion: '1.0.0',
      name: 'seine',
      type: 'bridge',
      bridge: 'cni0',
      capabilities: { portMappings: true },
      ipam: { type: 'host-local', subnet: '10.1.0.0/24' },
      prevResult: { cniVersion: '1.0.0', ips: [{ address: '10.1.0.2/24' }] },
    };
    expect(validateNetConf(conf)).toBe(conf);
  });

  it('reports every problem with a readable path, as code 7', () => {
    const e = caught(() =>
      validateNetConf({
        cniVersion: 'one',
        name: 'bad name',
        capabilities: { mac: 'yes' },
        ipam: {},
        prevResult: { cniVersion: '1.0.0', ips: [{ gateway: 1 }] },
      }),
    );
    expect(e.code).toBe(CniCode.InvalidNetworkConfig);
    expect(e.msg).toBe('invalid network configuration');
    expect(e.details).toContain('type: is required');
    expect(e.details).toContain('cniVersion: "one" is not valid');
    expect(e.details).toContain('name: "bad name" is not valid');
    expect(e.details).toContain('capabilities.mac: must be boolean (got "yes")');
    expect(e.details).toContain('ipam.type: is required');
    expect(e.details).toContain('prevResult.ips[0].address: is required');
    expect(e.details).toContain('prevResult.ips[0].gateway: must be string (got 1)');
  });

  it('checks prevResult addresses beyond the schema', () => {
    const e = caught(() => validateNetConf({ cniVersion: '1.0.0', name: 'n', type: 't', prevResult: { cniVersion: '1.0.0', ips: [{ address: '10.1.0.2' }] } }));
    expect(e.details).toBe('prevResult.ips[0].address: "10.1.0.2" is not an address/prefix');
  });

  it('refuses plugin types that are paths', () => {
    for (const type of ['../bin/sh', '/usr/bin/x', '..', '']) {
      expect(caught(() => validateNetConf({ cniVersion: '1.0.0', name: 'n', type })).details).toMatch(/^type: /);
    }
  });

  it('a non-object is code 7, undecodable text code 6', () => {
    expect(caught(() => validateNetConf([])).details).toBe('(root): must be object (got array)');
    const e = caught(() => parseJson('{"cniVersion": ', 'network configuration'));
    expect(e.code).toBe(CniCode.DecodeFailure);
    expect(e.msg).toBe('cannot decode network configuration');
  });

  it('refuses values nested deeper than any configuration needs (code 6), before anything recurses into them', () => {
    const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
    expect(parseJson(`{"a":${nested(MAX_JSON_DEPTH - 1)}}`, 'x')).toBeDefined();
    for (const text of [`{"a":${nested(MAX_JSON_DEPTH)}}`, nested(300_000)]) {
      const e = caught(() => parseJson(text, 'network configuration'));
      expect([e.code, e.msg, e.details]).toEqual([CniCode.DecodeFailure, 'cannot decode network configuration', `values nest deeper than ${MAX_JSON_DEPTH} levels`]);
    }
  });

  it('reads GC attachments from either key', () => {
    const base = { cniVersion: '1.1.0', name: 'n', type: 't' };
    const a = [{ containerID: 'c1', ifname: 'eth0' }];
    expect(gcAttachments(validateNetConf({ ...base, 'cni.dev/valid-attachments': a }))).toEqual(a);
    expect(gcAttachments(validateNetConf({ ...base, 'cni.dev/attachments': a }) as NetConf)).toEqual(a);
    expect(caught(() => validateNetConf({ ...base, 'cni.dev/valid-attachments': [{ containerID: 'c1' }] })).details).toBe('["cni.dev/valid-attachments"][0].ifname: is required');
  });
});

describe('conflist schema', () => {
  it('paths point into plugins[]', () => {
    const e = caught(() => parseConfList({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'bridge' }, { ipam: { type: 'host-local' } }, 3] }));
    expect(e.code).toBe(CniCode.InvalidNetworkConfig);
    expect(e.details).toBe('plugins[1].type: is required; plugins[2]: must be object (got 3)');
  });

  it('needs a name, plugins, and cniVersion or cniVersions', () => {
    expect(caught(() => parseConfList({ cniVersion: '1.0.0' })).details).toBe('name: is required; plugins: is required');
    expect(caught(() => parseConfList({ name: 'n', plugins: [{ type: 'x' }] })).details).toBe('cniVersion: is required (or cniVersions)');
    expect(caught(() => parseConfList({ cniVersion: '1.0.0', name: 'n', plugins: [] })).details).toBe('plugins: must NOT have fewer than 1 items');
  });

  it('merges the branches of disableCheck into one message', () => {
    const e = caught(() => parseConfList({ cniVersion: '1.0.0', name: 'n', disableCheck: 'maybe', plugins: [{ type: 'x' }] }));
    expect(e.details).toMatch(/^disableCheck: "maybe" is not valid \(must be boolean, or must match pattern/);
  });

  it('undecodable text is code 6; an unsupported version code 1', () => {
    expect(caught(() => parseConfList('{"name": nope}')).code).toBe(CniCode.DecodeFailure);
    expect(caught(() => parseConfList({ cniVersion: '0.2.0', name: 'n', plugins: [{ type: 'x' }] })).code).toBe(CniCode.IncompatibleVersion);
  });

  it('picks the version in effect and normalises boolean strings', () => {
    const l = parseConfList({ cniVersion: '1.0.0', cniVersions: ['0.4.0', '1.0.0', '1.1.0', '2.0.0'], name: 'n', disableCheck: 'True', plugins: [{ type: 'x' }] });
    expect(l.cniVersion).toBe('1.1.0');
    expect(l.disableCheck).toBe(true);
    expect(l.disableGC).toBe(false);
    expect(parseConfList({ cniVersions: ['0.4.0', '1.1.0'], name: 'n', plugins: [{ type: 'x' }] }, { supportedVersions: ['0.4.0', '1.0.0'] }).cniVersion).toBe('0.4.0');
  });
});

describe('result schema', () => {
  it('names each bad field, including semantic checks', () => {
    expect(resultProblems({ cniVersion: '1.0.0', interfaces: [{ name: 'eth0' }], ips: [{ address: '10.0.0.2/24', interface: 0 }] })).toEqual([]);
    expect(resultProblems({ interfaces: [{}], ips: [{ address: 1, version: 5 }], routes: [{ gw: 'x' }] })).toEqual([
      'cniVersion: is required',
      'interfaces[0].name: is required',
      'ips[0].address: must be string (got 1)',
      'ips[0].version: must be one of ["4","6"] (got 5)',
      'routes[0].dst: is required',
    ]);
    expect(
      resultProblems({
        cniVersion: '1.0.0',
        interfaces: [{ name: 'eth0' }],
        ips: [
          { address: 'fd00::2/129' },
          { address: '10.0.0.2/24', gateway: '10.0.0', interface: 1 },
          { address: '10.0.0.3/24', version: '6' },
        ],
        routes: [{ dst: 'default', gw: '::g' }],
      }),
    ).toEqual([
      'ips[0].address: "fd00::2/129" is not an address/prefix',
      'ips[1].gateway: "10.0.0" is not an IP address',
      'ips[1].interface: index 1 is out of range (1 interfaces)',
      'ips[2].version: "6" does not match 10.0.0.3/24',
      'routes[0].dst: "default" is not an address/prefix',
      'routes[0].gw: "::g" is not an IP address',
    ]);
  });

  it('validateResult reports with the code asked for', () => {
    expect(caught(() => validateResult({}, CniCode.DecodeFailure, 'bad plugin output')).code).toBe(CniCode.DecodeFailure);
    expect(caught(() => validateResult({})).code).toBe(CniCode.InvalidNetworkConfig);
  });

  it('a VERSION answer without supportedVersions means that one version', () => {
    expect(validateVersionResult({ cniVersion: '0.2.0', supportedVersions: ['0.1.0', '0.2.0'] }).supportedVersions).toEqual(['0.1.0', '0.2.0']);
    expect(validateVersionResult({ cniVersion: '0.1.0' }).supportedVersions).toEqual(['0.1.0']);
    expect(caught(() => validateVersionResult({ supportedVersions: [] })).code).toBe(CniCode.DecodeFailure);
  });

  it('renders JSON pointers readably', () => {
    expect(readablePath('')).toBe('(root)');
    expect(readablePath('/plugins/0/ipam/type')).toBe('plugins[0].ipam.type');
    expect(readablePath('/a~1b/c d', 'x')).toBe('x["a/b"]["c d"]');
  });
});

describe('precompiled validators', () => {
  it('compiled.ts is what generate.ts produces from definitions.ts (regenerate if this fails)', () => {
    expect(readFileSync(join(SRC, 'schema/compiled.ts'), 'utf8')).toBe(generateValidators());
  });

  it("skel's import graph stays light: no ajv, no logger", () => {
    const { files, packages } = importGraph(join(SRC, 'skel.ts'));
    expect(packages).toEqual(['ipaddr.js']);
    expect(files.every((f) => f.startsWith(SRC))).toBe(true);
  });
});
