// The configuration files as reference sections, from the schemas that validate them: the agent's and the
// controller's config, the CNI documents seine-cni reads and writes, and Seine's own network config in a NAD.
import { schema as agentConfigSchema, DEFAULT_AGENT_CONFIG } from '../primary/agent/config.js';
import { schema as controllerConfigSchema, DEFAULT_CONTROLLER_CONFIG } from '../primary/controller/config.js';
import { SCHEMAS as CNI_SCHEMAS } from '../cni/schema/definitions.js';
import { base as seineNetworkSchema, overlayRules, seineIpam, staticIpam, vlanRules } from '../secondary/nad/schema.js';
import { anchorOf, blocks, code, GENERATED_HEADER, table } from './markdown.js';
import { schemaMarkdown, type JsonSchema, type ResolvedRef } from './schema-markdown.js';

interface Section {
  title: string;
  intro: string;
  body: string[];
}

// The typed schema constants (JSONSchemaType, `as const`) are plain JSON Schema underneath.
const asSchema = (s: unknown): JsonSchema => s as JsonSchema;

/** Said from the schema, so that it stays true if the schema opens up. */
function unknownFieldsNote(schema: JsonSchema): string {
  return schema.additionalProperties === false ? ' Unknown fields are refused.' : '';
}

const CNI_TITLES: Record<string, string> = {
  conflist: 'CNI network configuration list',
  netconf: 'CNI network configuration',
  pluginconf: 'CNI plugin configuration',
  result: 'CNI result',
};

/** Resolves the CNI schemas' `$ref`s by `$id`; a whole schema with a section of its own is linked. */
function cniRef(ref: string): ResolvedRef {
  const [id, pointer = ''] = ref.split('#') as [string, string?];
  const target = (CNI_SCHEMAS as readonly unknown[]).map(asSchema).find((s) => s.$id === id);
  if (!target) throw new Error(`unknown CNI schema ${ref}`);
  let schema: unknown = target;
  for (const key of pointer.split('/').filter(Boolean)) schema = (schema as Record<string, unknown>)[key.replace(/~1/g, '/').replace(/~0/g, '~')];
  if (!schema) throw new Error(`CNI schema ${ref} does not exist`);
  const title = pointer === '' ? CNI_TITLES[id] : undefined;
  return { schema: asSchema(schema), ...(title ? { link: { title, anchor: anchorOf(title) } } : {}) };
}

function cniSchema(id: string): JsonSchema {
  return cniRef(id).schema;
}

/** Which keys each network type must and must not have, from the rules schemas. */
function networkTypeRules(): string {
  const rows = ([['vlan', vlanRules], ['overlay', overlayRules]] as const).map(([networkType, rules]) => {
    const forbidden = Object.entries(rules.properties)
      .filter(([, allowed]) => allowed === false)
      .map(([key]) => code(key));
    return [code(networkType), rules.required.map(code).join(', '), forbidden.join(', ')];
  });
  return table(['networkType', 'Requires', 'Must not have'], rows);
}

function sections(): Section[] {
  const seineNetwork = 'Seine network configuration';
  return [
    {
      title: 'Agent configuration',
      intro: `${code('seine agent --config FILE')} reads it (YAML; the ${code('agent.yaml')} key of the seine-config ConfigMap). A field left out takes its default.${unknownFieldsNote(asSchema(agentConfigSchema))}`,
      body: [schemaMarkdown(asSchema(agentConfigSchema), { defaults: DEFAULT_AGENT_CONFIG })],
    },
    {
      title: 'Controller configuration',
      intro: `${code('seine controller --config FILE')} reads it (YAML; the ${code('controller.yaml')} key of the seine-config ConfigMap). A field left out takes its default.${unknownFieldsNote(asSchema(controllerConfigSchema))}`,
      body: [schemaMarkdown(asSchema(controllerConfigSchema), { defaults: DEFAULT_CONTROLLER_CONFIG })],
    },
    {
      title: CNI_TITLES.conflist!,
      intro: `A ${code('.conflist')} file in the CNI configuration directory, as ${code('seine install-cni')} writes it; also the ${code('config')} of a NetworkAttachmentDefinition that chains plugins. Keys of a plugin's own are allowed and passed through.`,
      body: [schemaMarkdown(cniSchema('conflist'), { resolveRef: cniRef })],
    },
    {
      title: CNI_TITLES.pluginconf!,
      intro: `One item of a configuration list's ${code('plugins')}.`,
      body: [schemaMarkdown(cniSchema('pluginconf'), { resolveRef: cniRef })],
    },
    {
      title: CNI_TITLES.netconf!,
      intro: `What a plugin reads on stdin, and a single-plugin ${code('.conf')} file.`,
      body: [schemaMarkdown(cniSchema('netconf'), { resolveRef: cniRef })],
    },
    {
      title: CNI_TITLES.result!,
      intro: `A plugin's answer to ADD, and the ${code('prevResult')} the next plugin of a list receives.`,
      body: [schemaMarkdown(cniSchema('result'), { resolveRef: cniRef })],
    },
    {
      title: seineNetwork,
      intro: `The ${code('config')} of a NetworkAttachmentDefinition whose ${code('type')} is ${code('seine')}: a secondary network Seine makes itself.${unknownFieldsNote(asSchema(seineNetworkSchema))}`,
      body: [
        schemaMarkdown(asSchema(seineNetworkSchema)),
        `Each ${code('networkType')} requires some keys and refuses others:`,
        networkTypeRules(),
        `${code('ipam')} with ${code('"type": "seine"')} takes addresses from IPPools:`,
        schemaMarkdown(asSchema(seineIpam), { pathPrefix: 'ipam' }),
        `${code('ipam')} with ${code('"type": "static"')} gives the addresses listed:`,
        schemaMarkdown(asSchema(staticIpam), { pathPrefix: 'ipam' }),
      ],
    },
  ];
}

/** docs/reference/config.md. */
export function configMarkdown(): string {
  const all = sections();
  return blocks([
    GENERATED_HEADER,
    '# Configuration files',
    `Every field of Seine's configuration files and of the CNI documents it reads, from the schemas that validate them. Fields are listed with their full path; ${code('[]')} stands for every item of a list and ${code('<key>')} for every key of a map.`,
    all.map((s) => `- [${s.title}](#${anchorOf(s.title)})`).join('\n'),
    ...all.map((s) => blocks([`## ${s.title}`, s.intro, ...s.body]).trimEnd()),
  ]);
}

/** The section titles, for the index. */
export function configSectionTitles(): string[] {
  return sections().map((s) => s.title);
}
