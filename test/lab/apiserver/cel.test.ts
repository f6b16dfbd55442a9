import { kubernetesEnvironment } from '../../../src/lab/apiserver/cel-library.js';
import { escapeFieldName } from '../../../src/lab/apiserver/cel.js';
import { kubectl, startServer, type Json, type TestServer } from './helpers.js';

// CRD validation rules (x-kubernetes-validations) evaluated with CEL as kube-apiserver does, seen
// through the stock kubectl: self and oldSelf, messages and messageExpression, fieldPath and reason,
// the Kubernetes CEL library (IP, CIDR, URL, lists), and CRDs whose rules do not compile refused.

const GROUP = 'cel.example.com';

const rule = (r: string, extra: Json = {}): Json => ({ rule: r, ...extra });

function gadgetCrd(specRules: Json[] = [], extraProps: Json = {}): Json {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `gadgets.${GROUP}` },
    spec: {
      group: GROUP,
      scope: 'Namespaced',
      names: { plural: 'gadgets', singular: 'gadget', kind: 'Gadget' },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          subresources: { status: {} },
          schema: {
            openAPIV3Schema: {
              type: 'object',
              'x-kubernetes-validations': [rule("self.metadata.name != 'forbidden-name'", { message: 'this name is reserved' })],
              properties: {
                spec: {
                  type: 'object',
                  'x-kubernetes-validations': [
                    rule('self.minReplicas <= self.maxReplicas', {
                      message: 'minReplicas must not exceed maxReplicas',
                      messageExpression: "'minReplicas (' + string(self.minReplicas) + ') must not exceed maxReplicas (' + string(self.maxReplicas) + ')'",
                    }),
                    rule("!has(self.mode) || self.mode != 'legacy' || has(self.legacyNote)", { fieldPath: '.legacyNote', reason: 'FieldValueRequired', message: 'legacy mode needs a note' }),
                    rule('!has(self.gateway) || !has(self.network) || cidr(self.network).containsIP(self.gateway)', { fieldPath: '.gateway', message: 'gateway must be inside network' }),
                    rule('self.minReplicas >= 0'),
                    rule("!has(self.legacyNote) || self.mode == 'legacy'", { message: 'a legacy note needs legacy mode' }),
                    rule("!has(self.messageFallback) || self.messageFallback != 'fail'", { messageExpression: "'with note ' + self.legacyNote", message: 'fell back to the message' }),
                    ...specRules,
                  ],
                  required: ['minReplicas', 'maxReplicas'],
                  properties: {
                    minReplicas: { type: 'integer' },
                    maxReplicas: { type: 'integer' },
                    mode: { type: 'string' },
                    legacyNote: { type: 'string' },
                    messageFallback: { type: 'string' },
                    'owner-name': { type: 'string', 'x-kubernetes-validations': [rule("self != ''", { message: 'must not be empty' })] },
                    'weight%': { type: 'integer', 'x-kubernetes-validations': [rule('self <= 100', { message: 'at most 100 percent' })] },
                    immutableName: { type: 'string', 'x-kubernetes-validations': [rule('self == oldSelf', { message: 'Value is immutable' })] },
                    counter: { type: 'integer', 'x-kubernetes-validations': [rule('self >= oldSelf', { message: 'counter may only grow' })] },
                    window: {
                      type: 'object',
                      properties: {
                        length: { type: 'string', format: 'duration', 'x-kubernetes-validations': [rule("self <= duration('1h')", { message: 'at most an hour' })] },
                        since: { type: 'string', format: 'date-time', 'x-kubernetes-validations': [rule("self >= timestamp('2020-01-01T00:00:00Z')", { message: 'not before 2020' })] },
                      },
                      'x-kubernetes-validations': [rule('self == oldSelf', { message: 'window is immutable' })],
                    },
                    tags: {
                      type: 'array',
                      'x-kubernetes-list-type': 'set',
                      items: { type: 'string' },
                      'x-kubernetes-validations': [rule('self == oldSelf', { message: 'tags are immutable' }), rule("self.all(t, t != '')", { message: 'tags are not empty' })],
                    },
                    level: { type: 'integer', 'x-kubernetes-validations': [rule('oldSelf.hasValue() || self == 1', { optionalOldSelf: true, message: 'level starts at 1' })] },
                    network: { type: 'string', 'x-kubernetes-validations': [rule('isCIDR(self) && cidr(self).prefixLength() <= 24', { message: 'must be a CIDR of /24 or larger' })] },
                    gateway: { type: 'string', 'x-kubernetes-validations': [rule('isIP(self) && ip(self).family() == 4', { message: 'must be an IPv4 address' })] },
                    endpoint: { type: 'string', 'x-kubernetes-validations': [rule("isURL(self) && url(self).getScheme() == 'https'", { message: 'must be an https URL' })] },
                    labels: {
                      type: 'object',
                      additionalProperties: { type: 'string', 'x-kubernetes-validations': [rule('self.size() <= 5', { message: 'label values are at most 5 characters' })] },
                      'x-kubernetes-validations': [rule("self.all(k, !k.startsWith('forbidden'))", { reason: 'FieldValueForbidden', message: 'no forbidden labels' })],
                    },
                    ports: {
                      type: 'array',
                      'x-kubernetes-validations': [rule('self.map(p, p.start).isSorted()', { message: 'ports must be sorted' })],
                      items: {
                        type: 'object',
                        required: ['start', 'end'],
                        properties: { start: { type: 'integer' }, end: { type: 'integer' } },
                        'x-kubernetes-validations': [rule('self.start < self.end', { message: 'start must be below end' })],
                      },
                    },
                    ...extraProps,
                  },
                  allOf: [{ 'x-kubernetes-validations': [rule("!has(self.mode) || self.mode in ['modern', 'legacy']", { message: 'mode is modern or legacy' })] }],
                },
                status: { type: 'object', properties: { phase: { type: 'string', 'x-kubernetes-validations': [rule("self in ['Ready', 'Pending']")] } } },
              },
            },
          },
        },
      ],
    },
  };
}

const VALID = {
  minReplicas: 1,
  maxReplicas: 3,
  'owner-name': 'ops',
  network: '10.1.0.0/16',
  gateway: '10.1.0.1',
  endpoint: 'https://example.com/hook',
  labels: { tier: 'web' },
  ports: [{ start: 80, end: 90 }, { start: 443, end: 444 }],
  counter: 1,
  immutableName: 'first',
};

const gadget = (name: string, spec: Json): string => JSON.stringify({ apiVersion: `${GROUP}/v1`, kind: 'Gadget', metadata: { name, namespace: 'default' }, spec });

describe('CRD validation rules (CEL)', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startServer();
    const r = await kubectl(srv, ['apply', '-f', '-'], JSON.stringify(gadgetCrd()));
    if (r.code !== 0) throw new Error(`CRD refused: ${r.stderr}`);
    const w = await kubectl(srv, ['wait', '--for=condition=Established', '--timeout=30s', `crd/gadgets.${GROUP}`]);
    if (w.code !== 0) throw new Error(w.stderr);
  });
  afterAll(async () => {
    await srv?.stop();
  });

  /** kubectl's error for an object that must be refused, with nothing stored. */
  const refused = async (input: string, args = ['apply', '-f', '-']): Promise<string> => {
    const r = await kubectl(srv, args, input);
    expect([r.code, r.stdout]).toEqual([1, '']);
    return r.stderr;
  };
  const ok = async (input: string, args = ['apply', '-f', '-']): Promise<{ stdout: string; stderr: string }> => {
    const r = await kubectl(srv, args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr}`);
    return r;
  };

  it('accepts an object every rule holds for', async () => {
    expect((await ok(gadget('good', VALID))).stdout).toBe('gadget.cel.example.com/good created\n');
  });

  it.each([
    ['messageExpression gives the message', { minReplicas: 5, maxReplicas: 2 }, 'spec: Invalid value: "object": minReplicas (5) must not exceed maxReplicas (2)'],
    ['the default message names the rule', { minReplicas: -2, maxReplicas: 2 }, 'spec: Invalid value: "object": failed rule: self.minReplicas >= 0'],
    ['a failing messageExpression falls back to the message', { messageFallback: 'fail' }, 'spec: Invalid value: "object": fell back to the message'],
    ['fieldPath and reason Required', { mode: 'legacy' }, 'spec.legacyNote: Required value: legacy mode needs a note'],
    ['fieldPath names the field, reason Invalid by default', { gateway: '10.2.0.1' }, 'spec.gateway: Invalid value: "object": gateway must be inside network'],
    ['isCIDR and cidr().prefixLength()', { network: '10.1.0.0/28' }, 'spec.network: Invalid value: "string": must be a CIDR of /24 or larger'],
    ['isCIDR refuses a malformed CIDR', { network: '10.1.0.0/33' }, 'spec.network: Invalid value: "string": must be a CIDR of /24 or larger'],
    ['ip().family()', { gateway: 'fd00::1', network: 'fd00::/64' }, 'spec.gateway: Invalid value: "string": must be an IPv4 address'],
    ['isURL and url().getScheme()', { endpoint: 'http://example.com' }, 'spec.endpoint: Invalid value: "string": must be an https URL'],
    ['a rule on every item of a list', { ports: [{ start: 80, end: 90 }, { start: 500, end: 400 }] }, 'spec.ports[1]: Invalid value: "object": start must be below end'],
    ['a list extension (isSorted)', { ports: [{ start: 443, end: 444 }, { start: 80, end: 90 }] }, 'spec.ports: Invalid value: "array": ports must be sorted'],
    ['reason Forbidden on a map', { labels: { forbiddenKey: 'x' } }, 'spec.labels: Forbidden: no forbidden labels'],
    ['a rule on every value of a map', { labels: { tier: 'backend' } }, 'spec.labels[tier]: Invalid value: "string": label values are at most 5 characters'],
    ['a rule in an allOf branch', { mode: 'retro' }, 'spec: Invalid value: "object": mode is modern or legacy'],
    ['a property whose name is escaped in CEL', { 'owner-name': '' }, 'spec.owner-name: Invalid value: "string": must not be empty'],
    ['a property whose name CEL cannot spell', { 'weight%': 101 }, 'spec.weight%: Invalid value: "integer": at most 100 percent'],
  ])('refuses an object when %s', async (_what, change, line) => {
    const err = await refused(gadget('bad', { ...VALID, ...change }));
    expect(err).toContain(line);
  });

  it('evaluates root rules with metadata.name, and reports every failing rule', async () => {
    expect(await refused(JSON.stringify({ apiVersion: `${GROUP}/v1`, kind: 'Gadget', metadata: { name: 'forbidden-name', namespace: 'default' }, spec: VALID }))).toBe(
      'The Gadget "forbidden-name" is invalid: <nil>: Invalid value: "object": this name is reserved\n',
    );
    const err = await refused(gadget('bad', { ...VALID, minReplicas: 9, gateway: 'nope' }));
    expect(err).toContain('* spec: Invalid value: "object": minReplicas (9) must not exceed maxReplicas (3)');
    expect(err).toContain('* spec.gateway: Invalid value: "string": must be an IPv4 address');
  });

  it('reports a rule that fails to evaluate, as kube words it', async () => {
    // self.mode is absent: reading it is an error, reported with the rule's message.
    expect(await refused(gadget('bad', { ...VALID, legacyNote: 'kept for history' }))).toContain('spec: Invalid value: "object": no such key: mode evaluating rule: a legacy note needs legacy mode');
  });

  it('skips the rules when the object does not have the schema shape', async () => {
    const err = await refused(gadget('bad', { ...VALID, minReplicas: 'one' }));
    expect(err).toContain('spec.minReplicas: Invalid value: "string": spec.minReplicas in body must be of type integer: "string"');
    expect(err).toContain('<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation');
  });

  it('evaluates transition rules (oldSelf) only on update', async () => {
    expect((await ok(gadget('moving', { ...VALID, counter: 10 }))).stdout).toMatch(/created/);
    expect(await refused(gadget('moving', { ...VALID, counter: 9 }))).toContain('spec.counter: Invalid value: "integer": counter may only grow');
    expect(await refused(gadget('moving', { ...VALID, counter: 10, immutableName: 'second' }))).toContain('spec.immutableName: Invalid value: "string": Value is immutable');
    expect((await ok(gadget('moving', { ...VALID, counter: 11 }))).stdout).toMatch(/configured/);
    // A field absent before has no old value: the transition rule does not apply.
    const { counter: _c, ...withoutCounter } = VALID;
    expect((await ok(gadget('fresh', withoutCounter))).stdout).toMatch(/created/);
    expect((await ok(gadget('fresh', { ...withoutCounter, counter: 0 }))).stdout).toMatch(/configured/);
  });

  it('types duration and date-time strings as CEL durations and timestamps', async () => {
    const window = { length: '30m', since: '2024-05-01T00:00:00Z' };
    expect(await refused(gadget('windowed', { ...VALID, window: { ...window, length: '1h30m' } }))).toContain('spec.window.length: Invalid value: "string": at most an hour');
    expect(await refused(gadget('windowed', { ...VALID, window: { ...window, since: '2019-12-31T23:59:59Z' } }))).toContain('spec.window.since: Invalid value: "string": not before 2020');
    expect((await ok(gadget('windowed', { ...VALID, window }))).stdout).toMatch(/created/);
    expect((await ok(gadget('windowed', { ...VALID, window, minReplicas: 2 }))).stdout).toMatch(/configured/);
    expect(await refused(gadget('windowed', { ...VALID, window: { ...window, length: '45m' } }))).toContain('spec.window: Invalid value: "object": window is immutable');
  });

  it('compares set lists regardless of order', async () => {
    expect((await ok(gadget('tagged', { ...VALID, tags: ['a', 'b', 'c'] }))).stdout).toMatch(/created/);
    expect((await ok(gadget('tagged', { ...VALID, tags: ['c', 'a', 'b'] }))).stdout).toMatch(/configured/);
    expect(await refused(gadget('tagged', { ...VALID, tags: ['c', 'a'] }))).toContain('spec.tags: Invalid value: "array": tags are immutable');
    expect(await refused(gadget('tagless', { ...VALID, tags: ['a', ''] }))).toContain('spec.tags: Invalid value: "array": tags are not empty');
  });

  it('evaluates optionalOldSelf rules on create too, with oldSelf an optional', async () => {
    expect(await refused(gadget('leveled', { ...VALID, level: 2 }))).toContain('spec.level: Invalid value: "integer": level starts at 1');
    expect((await ok(gadget('leveled', { ...VALID, level: 1 }))).stdout).toMatch(/created/);
    expect((await ok(gadget('leveled', { ...VALID, level: 5 }))).stdout).toMatch(/configured/);
  });

  it('validates the status subresource with the same rules', async () => {
    const gadgets = srv.api.resource(`${GROUP}/v1`, 'gadgets');
    const obj = gadgets.get('good', 'default') as Json;
    expect(() => gadgets.updateStatus({ ...obj, status: { phase: 'Broken' } })).toThrow(`status.phase: Invalid value: "string": failed rule: self in ['Ready', 'Pending']`);
    expect((gadgets.updateStatus({ ...obj, status: { phase: 'Ready' } }) as Json).status.phase).toBe('Ready');
  });

  it('ratchets: a rule added later does not block updates that leave the failing value alone', async () => {
    const stored = JSON.parse((await ok('', ['get', 'gadget', 'good', '-o', 'json'])).stdout);
    const crd = gadgetCrd([rule('self.maxReplicas <= 2', { message: 'at most 2 replicas now' })]);
    crd.metadata.resourceVersion = JSON.parse((await ok('', ['get', 'crd', `gadgets.${GROUP}`, '-o', 'json'])).stdout).metadata.resourceVersion;
    await ok(JSON.stringify(crd), ['replace', '-f', '-']);
    // Changing another part of spec still fails: spec as a whole changed.
    expect(await refused(gadget('good', { ...VALID, minReplicas: 2 }))).toContain('spec: Invalid value: "object": at most 2 replicas now');
    // A metadata-only change leaves spec as it was: the violation is a warning.
    const r = await ok(JSON.stringify({ ...stored, metadata: { ...stored.metadata, labels: { touched: 'yes' } } }), ['replace', '-f', '-']);
    expect(r.stderr).toContain('Warning: spec: Invalid value: "object": at most 2 replicas now');
  });
});

describe('CRDs whose rules are wrong are refused', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startServer();
  });
  afterAll(async () => {
    await srv?.stop();
  });

  const RULE_FIELD = 'spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0]';
  const withSpecRule = (r: Json, extraProps: Json = {}): string => {
    const crd = gadgetCrd();
    crd.spec.versions[0].schema.openAPIV3Schema.properties.spec['x-kubernetes-validations'] = [r];
    Object.assign(crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties, extraProps);
    return JSON.stringify(crd);
  };

  it.each([
    ['an unknown field', rule('self.nope > 1'), `${RULE_FIELD}.rule: Invalid value: apiextensions.ValidationRule{Rule:"self.nope > 1", Message:"", MessageExpression:"", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:"", OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:5: undefined field 'nope'\n | self.nope > 1\n | ....^`],
    ['has() of an unknown field', rule('has(self.nope) || true'), "compilation failed: ERROR: <input>:1:9: undefined field 'nope'\n | has(self.nope) || true\n | ........^"],
    ['an unknown variable', rule('other.minReplicas > 1'), "compilation failed: ERROR: <input>:1:1: undeclared reference to 'other' (in container '')"],
    ['a syntax error', rule('self.minReplicas >'), `${RULE_FIELD}.rule: Invalid value: apiextensions.ValidationRule{Rule:"self.minReplicas >"`],
    ['a type error', rule('self.minReplicas + "x" == 1'), 'compilation failed: ERROR: <input>:1:'],
    ['a rule that is not a bool', rule('self.minReplicas'), 'cel expression must evaluate to a bool'],
    ['a messageExpression that is not a string', rule('true', { messageExpression: 'self.minReplicas' }), `${RULE_FIELD}.messageExpression: Invalid value: apiextensions.ValidationRule{Rule:"true", Message:"", MessageExpression:"self.minReplicas"`],
    ['an empty rule', rule('  '), `${RULE_FIELD}.rule: Required value: rule is not specified`],
    ['a message with a line break', rule('true', { message: 'a\nb' }), `${RULE_FIELD}.message: Invalid value: "a\\nb": message must not contain line breaks`],
    ['an unknown reason', rule('true', { reason: 'FieldValueWrong' }), `${RULE_FIELD}.reason: Unsupported value: "FieldValueWrong": supported values: "FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"`],
    ['a fieldPath naming no field', rule('true', { fieldPath: '.nope' }), `${RULE_FIELD}.fieldPath: Invalid value: ".nope": fieldPath must be a valid path`],
    ['optionalOldSelf without oldSelf', rule('true', { optionalOldSelf: true }), `${RULE_FIELD}.optionalOldSelf: Invalid value: true: may not be set if oldSelf is not used in rule`],
  ])('%s', async (_what, r, message) => {
    const res = await kubectl(srv, ['create', '-f', '-'], withSpecRule(r));
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(message);
  });

  it('a property named by a CEL reserved word: has() must spell it escaped, as cel-go requires', async () => {
    const plain = await kubectl(srv, ['create', '-f', '-'], withSpecRule(rule('!has(self.namespace)'), { namespace: { type: 'string' } }));
    expect(plain.code).toBe(1);
    expect(plain.stderr).toContain("compilation failed: ERROR: <input>:1:10: undefined field 'namespace'");
    const escaped = await kubectl(srv, ['create', '-f', '-'], withSpecRule(rule('!has(self.__namespace__)'), { namespace: { type: 'string' } }));
    expect(escaped.stderr).toBe('');
    expect(escaped.code).toBe(0);
    expect((await kubectl(srv, ['delete', 'crd', '--all'])).code).toBe(0);
  });

  it('oldSelf inside the items of a list that cannot be correlated', async () => {
    const crd = gadgetCrd([], { tags: { type: 'array', items: { type: 'string', 'x-kubernetes-validations': [rule('self == oldSelf')] } } });
    const res = await kubectl(srv, ['create', '-f', '-'], JSON.stringify(crd));
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[tags].items.x-kubernetes-validations[0].rule: Invalid value: "self == oldSelf": oldSelf cannot be used on the uncorrelatable portion of the schema within');
    expect((await kubectl(srv, ['get', 'crd', '-o', 'name'])).stdout).toBe('');
  });
});

describe('the Kubernetes CEL library', () => {
  const env = kubernetesEnvironment();
  const evaluate = (expr: string): unknown => env.evaluate(expr, {});

  it.each([
    ['isCIDR("10.0.0.0/8")', true],
    ['isCIDR("10.0.0.1/8")', true],
    ['isCIDR("fd00::/8")', true],
    ['isCIDR("10.0.0.0/33")', false],
    ['isCIDR("10.0.0.0")', false],
    ['isCIDR("010.0.0.0/8")', false],
    ['isCIDR("10.0.0.0/08")', false],
    ['isCIDR("::ffff:1.2.3.4/128")', false],
    ['isIP("1.2.3.4")', true],
    ['isIP("fe80::1%eth0")', false],
    ['isIP("1.2.3")', false],
    ['ip("10.0.0.1").family()', 4n],
    ['ip("::1").family()', 6n],
    ['ip("::1").isLoopback()', true],
    ['ip("0.0.0.0").isUnspecified()', true],
    ['ip("169.254.1.1").isLinkLocalUnicast()', true],
    ['ip("224.0.0.5").isLinkLocalMulticast()', true],
    ['ip("8.8.8.8").isGlobalUnicast()', true],
    ['ip.isCanonical("2001:db8::1")', true],
    ['ip.isCanonical("2001:DB8::1")', false],
    ['string(ip("2001:0db8::0001"))', '2001:db8::1'],
    ['cidr("10.0.0.1/8").masked() == cidr("10.0.0.0/8")', true],
    ['string(cidr("10.0.0.1/8").masked())', '10.0.0.0/8'],
    ['cidr("10.0.0.0/8").prefixLength()', 8n],
    ['cidr("10.0.0.0/8").ip() == ip("10.0.0.0")', true],
    ['cidr("10.0.0.0/8").containsIP("10.255.0.1")', true],
    ['cidr("10.0.0.0/8").containsIP(ip("11.0.0.1"))', false],
    ['cidr("10.0.0.0/8").containsIP("::1")', false],
    ['cidr("10.0.0.0/8").containsCIDR("10.1.0.0/16")', true],
    ['cidr("10.0.0.0/16").containsCIDR(cidr("10.0.0.0/8"))', false],
    ['isURL("https://example.com:8443/a?b=c")', true],
    ['isURL("/just/a/path")', true],
    ['isURL("example.com")', false],
    ['url("https://example.com:8443/a?b=c&b=d").getQuery()', { b: ['c', 'd'] }],
    ['url("https://[::1]:8443/a").getHostname()', '::1'],
    ['url("https://example.com:8443/a").getPort()', '8443'],
    ['isQuantity("1.5Gi")', true],
    ['isQuantity("1.5GB")', false],
    ['quantity("1") == quantity("1000m")', true],
    ['quantity("1Ki").asInteger()', 1024n],
    ['quantity("2e3").asInteger()', 2000n],
    ['quantity("500m").isInteger()', false],
    ['quantity("500m").asApproximateFloat()', 0.5],
    ['quantity("1Gi").isGreaterThan(quantity("1G"))', true],
    ['quantity("100Mi").compareTo(quantity("0.1Gi"))', -1n],
    ['quantity("-1").sign()', -1n],
    ['quantity("1").add(quantity("500m")).sub(1) == quantity("0.5")', true],
    ['1 < 1.5 && 2.5 >= 2 && !(3 <= 2.9)', true],
    ['[1, 2, 3].sum()', 6n],
    ['[3, 1, 2].min()', 1n],
    ['["b", "a"].max()', 'b'],
    ['[1, 2, 2].isSorted()', true],
    ['[2, 1].isSorted()', false],
    ['["a", "b", "a"].lastIndexOf("a")', 2n],
    ['"a-b-c".replace("-", "_", 1)', 'a_b-c'],
    ['"abc".charAt(1)', 'b'],
    ['"abc".reverse()', 'cba'],
    ['"%s has %d items, %.2f%% full, mask %x".format([dyn("pool"), dyn(3), dyn(12.345), dyn(255)])', 'pool has 3 items, 12.35% full, mask ff'],
    ['"%s and %s".format([[1, 2], [3]])', '[1, 2] and [3]'],
    ['"abc123".find("[0-9]+")', '123'],
    ['"a1b22".findAll("[0-9]+")', ['1', '22']],
    ['sets.contains([1, 2, 3], [2])', true],
    ['sets.equivalent([1, 2], [2, 1])', true],
    ['sets.intersects([1], [2])', false],
    ['strings.quote("a\\"b")', '"a\\"b"'],
  ])('%s', (expr, want) => {
    expect(evaluate(expr)).toEqual(want);
  });

  it('refuses what kube refuses', () => {
    expect(() => evaluate('ip("1.2.3")')).toThrow(/parse error/);
    expect(() => evaluate('cidr("1.2.3.4")')).toThrow(/parse error/);
    expect(() => evaluate('[].min()')).toThrow(/min called on empty list/);
    expect(() => evaluate('quantity("1.5").asInteger()')).toThrow(/cannot convert value to integer/);
  });

  it('escapes property names as kube does', () => {
    expect(['owner-name', 'a.b', 'x/y', 'a__b', 'namespace', 'in', '1st', 'ok_name', 'a$b'].map(escapeFieldName)).toEqual([
      'owner__dash__name',
      'a__dot__b',
      'x__slash__y',
      'a__underscores__b',
      '__namespace__',
      '__in__',
      undefined,
      'ok_name',
      undefined,
    ]);
  });
});
