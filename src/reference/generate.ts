// The whole reference, docs/reference/*, as text: main.ts writes it, and a unit test compares it with the
// committed files so that the reference cannot drift from the schemas and the CLI.
import { buildProgram } from '../cli/program.js';
import { repoRoot } from '../util/paths.js';
import { cliMarkdown } from './cli-markdown.js';
import { configMarkdown, configSectionTitles } from './config-markdown.js';
import { crdsMarkdown, readCrds, type Crd } from './crd-markdown.js';
import { anchorOf, blocks, code, GENERATED_HEADER } from './markdown.js';

/** Where the reference lives, relative to the repository root. */
export const REFERENCE_DIR = 'docs/reference';

function indexMarkdown(crds: readonly Crd[]): string {
  const kinds = crds.map((c) => `[${c.spec.names.kind}](crds.md#${anchorOf(c.spec.names.kind)})`).join(', ');
  const configs = configSectionTitles()
    .map((t) => `[${t}](config.md#${anchorOf(t)})`)
    .join(', ');
  return blocks([
    GENERATED_HEADER,
    '# Reference',
    `Generated from the sources of truth (the CRDs in ${code('crds/')}, the configuration schemas, the CLI's own definition); ${code('test/reference/reference.test.ts')} fails when these files differ from what ${code('npm run docs:reference')} writes.`,
    [
      `- [Custom resources](crds.md): ${kinds}.`,
      `- [Configuration files](config.md): ${configs}.`,
      `- [Command line](cli.md): every ${code('seine')} command and its options.`,
      '- [Metrics](../metrics.md): the Prometheus metrics and health endpoints of the agent and the controller (written by hand).',
    ].join('\n'),
  ]);
}

/** File name in docs/reference → its content. */
export async function generateReference(root: string = repoRoot()): Promise<Map<string, string>> {
  const crds = readCrds(root);
  return new Map([
    ['README.md', indexMarkdown(crds)],
    ['crds.md', crdsMarkdown(crds)],
    ['config.md', configMarkdown()],
    ['cli.md', cliMarkdown(await buildProgram(), { installDir: root })],
  ]);
}
