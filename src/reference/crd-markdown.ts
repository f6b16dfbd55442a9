// The CustomResourceDefinitions in crds/ as reference sections: one per kind and version, its spec and status fields.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { anchorOf, blocks, code, GENERATED_HEADER, prose, table } from './markdown.js';
import { schemaMarkdown, type JsonSchema } from './schema-markdown.js';

interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  description?: string;
  priority?: number;
}

interface CrdVersion {
  name: string;
  served: boolean;
  storage: boolean;
  subresources?: Record<string, unknown>;
  additionalPrinterColumns?: PrinterColumn[];
  schema?: { openAPIV3Schema?: JsonSchema };
}

export interface Crd {
  /** The file it came from, relative to the repository root. */
  file: string;
  metadata: { name: string };
  spec: {
    group: string;
    scope: string;
    names: { kind: string; plural: string; singular?: string; shortNames?: string[]; categories?: string[] };
    versions: CrdVersion[];
  };
}

/** Every CustomResourceDefinition in `dir` (YAML files), ordered by kind. */
export function readCrds(root: string, dir = 'crds'): Crd[] {
  const crds: Crd[] = [];
  for (const file of readdirSync(join(root, dir)).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(root, dir, file), 'utf8'))) {
      if (doc.errors.length) throw new Error(`${dir}/${file}: ${doc.errors[0]!.message}`);
      const value = doc.toJS() as { kind?: string } | null;
      if (value?.kind === 'CustomResourceDefinition') crds.push({ ...(value as Omit<Crd, 'file'>), file: `${dir}/${file}` });
    }
  }
  return crds.sort((a, b) => a.spec.names.kind.localeCompare(b.spec.names.kind));
}

/** Fields every object has: the API's conventions document them, not this reference. */
const COMMON_FIELDS = new Set(['apiVersion', 'kind', 'metadata']);

function versionHeading(crd: Crd, version: CrdVersion): string {
  return `${crd.spec.names.kind} ${version.name}`;
}

function kindSection(crd: Crd): string {
  const { names } = crd.spec;
  const facts = [
    `- Name: ${code(crd.metadata.name)}`,
    `- API group: ${code(crd.spec.group)}, ${crd.spec.scope === 'Cluster' ? 'cluster-scoped' : 'namespaced'}`,
    `- Names: ${[names.plural, names.singular, ...(names.shortNames ?? [])].filter((n): n is string => !!n).map(code).join(', ')}`,
    ...(names.categories?.length ? [`- Categories: ${names.categories.map(code).join(', ')}`] : []),
    `- Versions: ${crd.spec.versions.map((v) => `[${v.name}](#${anchorOf(versionHeading(crd, v))})${v.storage ? ' (storage)' : ''}${v.served ? '' : ' (not served)'}`).join(', ')}`,
    `- Source: [${crd.file}](../../${crd.file})`,
  ];
  return blocks([`## ${names.kind}`, facts.join('\n'), ...crd.spec.versions.map((v) => versionSection(crd, v))]).trimEnd();
}

function versionSection(crd: Crd, version: CrdVersion): string {
  const schema = version.schema?.openAPIV3Schema;
  const served = [version.served ? 'Served' : 'Not served', version.storage ? 'the storage version' : undefined].filter(Boolean).join(', ');
  const subresources = Object.keys(version.subresources ?? {});
  const columns = version.additionalPrinterColumns ?? [];
  const parts = [
    `### ${versionHeading(crd, version)}`,
    `${code(`apiVersion: ${crd.spec.group}/${version.name}`)}. ${served}.${subresources.length ? ` Subresources: ${subresources.map(code).join(', ')}.` : ''}`,
    schema?.description ? prose(schema.description) : undefined,
  ];
  if (columns.length) {
    parts.push(
      `Columns of ${code('kubectl get')}:`,
      table(
        ['Column', 'Type', 'JSON path', 'Description'],
        columns.map((c) => [`${c.name}${c.priority ? ' (wide)' : ''}`, c.type, code(c.jsonPath), prose(c.description ?? '')]),
      ),
    );
  }
  for (const [field, fieldSchema] of Object.entries(schema?.properties ?? {})) {
    if (COMMON_FIELDS.has(field) || typeof fieldSchema !== 'object') continue;
    // The field itself is the table's first row: its description, and whether it is required.
    const wrapper: JsonSchema = { type: 'object', properties: { [field]: fieldSchema }, required: (schema?.required ?? []).filter((r) => r === field) };
    parts.push(`#### ${versionHeading(crd, version)} ${field}`, schemaMarkdown(wrapper));
  }
  return blocks(parts).trimEnd();
}

/** docs/reference/crds.md. */
export function crdsMarkdown(crds: readonly Crd[]): string {
  const contents = crds.map((crd) => `- [${crd.spec.names.kind}](#${anchorOf(crd.spec.names.kind)}): ${crd.spec.versions.map((v) => `[${v.name}](#${anchorOf(versionHeading(crd, v))})`).join(', ')}`);
  return blocks([
    GENERATED_HEADER,
    '# Custom resources',
    `The custom resources Seine defines or implements, from the CustomResourceDefinitions in ${code('crds/')}. Fields are listed with their full path; ${code('[]')} stands for every item of a list and ${code('<key>')} for every key of a map. ${code('apiVersion')}, ${code('kind')} and ${code('metadata')} are those of every Kubernetes object.`,
    contents.join('\n'),
    ...crds.map(kindSection),
  ]);
}
