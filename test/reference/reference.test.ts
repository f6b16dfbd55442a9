import { Command, Option } from 'commander';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliMarkdown } from '../../src/reference/cli-markdown.js';
import { generateReference, REFERENCE_DIR } from '../../src/reference/generate.js';
import { anchorOf, cell, code, GENERATED_HEADER } from '../../src/reference/markdown.js';
import { schemaFields, schemaMarkdown, type JsonSchema } from '../../src/reference/schema-markdown.js';
import { repoRoot } from '../../src/util/paths.js';

/** Where two texts part, as a line number and both lines, so a stale file's failure shows what changed. */
function firstDifference(committed: string, generated: string): string {
  const a = committed.split('\n');
  const b = generated.split('\n');
  const i = a.findIndex((line, n) => line !== b[n]);
  const at = i === -1 ? a.length : i;
  return `first difference at line ${at + 1}:\n  committed: ${a[at] ?? '(end of file)'}\n  generated: ${b[at] ?? '(end of file)'}`;
}

const generated = await generateReference();

describe('docs/reference', () => {
  const dir = join(repoRoot(), REFERENCE_DIR);

  it.each([...generated.keys()])('%s is what the generator writes now', (name) => {
    const path = join(dir, name);
    const content = generated.get(name)!;
    const committed = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
    if (committed === undefined) throw new Error(`${REFERENCE_DIR}/${name} is missing: run \`npm run docs:reference\``);
    if (committed !== content) throw new Error(`${REFERENCE_DIR}/${name} is stale: run \`npm run docs:reference\`\n${firstDifference(committed, content)}`);
  });

  it('holds no page the generator does not make', () => {
    const extra = readdirSync(dir).filter((name) => !generated.has(name));
    if (extra.length) throw new Error(`${extra.join(', ')} in ${REFERENCE_DIR} are not generated: run \`npm run docs:reference\` (it removes them)`);
  });

  it('every page starts with the generated-file comment', () => {
    for (const content of generated.values()) expect(content.split('\n')[0]).toBe(GENERATED_HEADER);
  });

  it('covers every CRD kind and version, and every seine command', () => {
    const crds = generated.get('crds.md')!;
    for (const heading of ['ClusterNetworkPolicy v1alpha2', 'IPPool v1alpha1', 'MultiNetworkPolicy v1beta1', 'MultiNetworkPolicy v1beta2', 'NetworkAttachmentDefinition v1', 'ServiceChain v1alpha1']) {
      expect(crds).toContain(`### ${heading}\n`);
    }
    const cli = generated.get('cli.md')!;
    for (const command of ['seine', 'seine lab up', 'seine lab down', 'seine agent', 'seine controller', 'seine install-cni', 'seine get']) expect(cli).toContain(`## \`${command}\`\n`);
    // Hidden: started by `lab up` only.
    expect(cli).not.toContain('seine lab serve');
    // No absolute path of this checkout in a default.
    expect(cli).not.toContain(repoRoot());
  });
});

describe('schema to markdown', () => {
  const schema: JsonSchema = {
    type: 'object',
    additionalProperties: false,
    required: ['name', 'ports'],
    properties: {
      name: { type: 'string', description: 'The name.', minLength: 1, maxLength: 15, pattern: '^(a|b)+$' },
      mode: { type: 'string', enum: ['fast', 'slow'], default: 'fast', description: 'How it runs.' },
      ratio: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
      ports: {
        type: 'array',
        minItems: 1,
        description: 'Ports | ranges.',
        items: {
          type: 'object',
          required: ['port'],
          oneOf: [{ required: ['port'] }, { required: ['start', 'end'] }],
          properties: { port: { type: 'integer', minimum: 1, maximum: 65535 }, protocol: { type: 'string', const: 'TCP' } },
        },
      },
      limits: {
        type: 'object',
        description: 'Nested.',
        properties: { cpu: { type: 'integer', minimum: 0 }, memory: { type: 'string', format: 'quantity' } },
      },
      spare: {
        type: 'object',
        properties: { cpu: { type: 'integer', minimum: 0 }, memory: { type: 'string', format: 'quantity' } },
      },
      labels: { type: 'object', additionalProperties: { type: 'string', maxLength: 63 } },
      port: { anyOf: [{ type: 'integer' }, { type: 'string', pattern: '^[a-z]+$' }] },
      forbidden: false,
    },
  };

  it('lists nested objects and arrays of objects by path, depth first', () => {
    expect(schemaFields(schema).map((r) => r.path)).toEqual(['name', 'mode', 'ratio', 'ports', 'ports[].port', 'ports[].protocol', 'limits', 'limits.cpu', 'limits.memory', 'spare', 'labels', 'port']);
    expect(schemaFields(schema, { pathPrefix: 'spec' })[0]!.path).toBe('spec.name');
  });

  it('renders types, required, defaults and allowed values', () => {
    const row = (path: string) => schemaFields(schema).find((r) => r.path === path)!;
    expect(row('name')).toEqual({ path: 'name', type: 'string', required: true, default: '', allowed: 'pattern `^(a|b)+$`; 1 to 15 characters', description: 'The name.' });
    expect(row('mode')).toMatchObject({ required: false, default: '`fast`', allowed: 'one of `fast`, `slow`' });
    expect(row('ratio')).toMatchObject({ type: 'number', allowed: '> 0 and ≤ 1' });
    expect(row('ports')).toMatchObject({ type: 'array of object', required: true, allowed: 'at least 1 item; each item: exactly one of: `port`, `start` and `end`' });
    expect(row('ports[].port')).toMatchObject({ type: 'integer', required: true, allowed: '1 to 65535' });
    expect(row('ports[].protocol')).toMatchObject({ type: 'string', required: false, allowed: 'only `TCP`' });
    expect(row('limits.memory')).toMatchObject({ allowed: 'format `quantity`' });
    expect(row('labels')).toMatchObject({ type: 'map of string', allowed: 'each value: at most 63 characters' });
    expect(row('port')).toMatchObject({ type: 'integer or string', allowed: 'string: pattern `^[a-z]+$`' });
  });

  it('refers to a shape it already listed instead of listing it again', () => {
    expect(schemaFields(schema).find((r) => r.path === 'spare')!.type).toBe('object (fields as `limits`)');
  });

  it('takes defaults kept in code, and a field with one is not required', () => {
    const rows = schemaFields(schema, { defaults: { name: 'x', limits: { cpu: 2 } } });
    expect(rows.find((r) => r.path === 'name')).toMatchObject({ required: false, default: '`x`' });
    expect(rows.find((r) => r.path === 'limits.cpu')).toMatchObject({ default: '`2`' });
    // A whole object of defaults is shown field by field.
    expect(rows.find((r) => r.path === 'limits')!.default).toBe('');
  });

  it('resolves $ref and allOf, and links a schema that has a section of its own', () => {
    const defs: Record<string, JsonSchema> = {
      version: { type: 'string', pattern: '^\\d+$' },
      result: { type: 'object', properties: { ok: { type: 'boolean' } } },
    };
    const resolveRef = (ref: string) => (ref === 'result' ? { schema: defs.result!, link: { title: 'Result', anchor: 'result' } } : { schema: defs[ref.split('/').pop()!]! });
    const rows = schemaFields({ allOf: [{ type: 'object', required: ['v'], properties: { v: { $ref: '#/version' } } }], properties: { prev: { $ref: 'result' } } }, { resolveRef });
    // allOf's fields first, as the object's own come after them.
    expect(rows).toEqual([
      expect.objectContaining({ path: 'v', type: 'string', required: true, allowed: 'pattern `^\\d+$`' }),
      expect.objectContaining({ path: 'prev', type: 'object ([Result](#result))' }),
    ]);
  });

  it('escapes pipes in every cell of the table', () => {
    const lines = schemaMarkdown(schema).split('\n');
    expect(lines[0]).toBe('| Field | Type | Required | Default | Allowed values | Description |');
    expect(lines[1]).toBe('| --- | --- | --- | --- | --- | --- |');
    expect(lines).toContain('| `name` | string | yes |  | pattern `^(a\\|b)+$`; 1 to 15 characters | The name. |');
    expect(lines.find((l) => l.startsWith('| `ports` |'))).toContain('Ports \\| ranges.');
    // Every row has the header's six cells: no pipe left unescaped.
    for (const line of lines) expect(line.split(/(?<!\\)\|/).length).toBe(8);
  });
});

describe('markdown helpers', () => {
  it('code spans hold backticks', () => {
    expect(code('a')).toBe('`a`');
    expect(code('a`b')).toBe('``a`b``');
    expect(code('`a')).toBe('`` `a ``');
  });

  it('cells are one line with pipes escaped', () => {
    expect(cell('a | b\n  c')).toBe('a \\| b c');
  });

  it('anchors are GitHub\'s', () => {
    expect(anchorOf('`seine lab up`')).toBe('seine-lab-up');
    expect(anchorOf('IPPool v1alpha1')).toBe('ippool-v1alpha1');
    expect(anchorOf('CNI network configuration list')).toBe('cni-network-configuration-list');
  });
});

describe('cli to markdown', () => {
  function program(): Command {
    const root = new Command('tool').description('a tool');
    root
      .command('run')
      .description('runs | things')
      .argument('<target>', 'what to run')
      .argument('[extra...]', 'more')
      .requiredOption('--config <file>', 'config file')
      .addOption(new Option('-o, --output <format>', 'output').choices(['json', 'yaml']))
      .option('--plugin <file>', 'a plugin', '/checkout/bin/plugin')
      .addOption(new Option('--secret <dir>').hideHelp());
    root.command('internal', { hidden: true });
    return root;
  }

  it('lists every visible command with usage, arguments and options', () => {
    const text = cliMarkdown(program(), { installDir: '/checkout' });
    expect(text).toContain('## `tool run`\n\nruns | things\n\n```\ntool run [options] <target> [extra...]\n```');
    expect(text).toContain('| `<target>` | yes | what to run |');
    expect(text).toContain('| `[extra...]` |  | more |');
    expect(text).toContain('| Option | Required | Description | Default | Allowed values |');
    expect(text).toContain('| `--config <file>` | yes | config file |  |  |');
    expect(text).toContain('| `-o, --output <format>` |  | output |  | `json`, `yaml` |');
    expect(text).toContain('| `--plugin <file>` |  | a plugin | `<install dir>/bin/plugin` |  |');
    expect(text).toContain('| [`tool run`](#tool-run) | runs \\| things |');
    expect(text).not.toContain('internal');
    expect(text).not.toContain('--secret');
    expect(text).not.toContain('/checkout');
  });
});
