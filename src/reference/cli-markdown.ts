// The commander program as reference sections: every visible command's usage, description, arguments, options
// and subcommands, read from the program itself so that the reference is the help the CLI prints.
import type { Argument, Command, Option } from 'commander';
import { anchorOf, blocks, code, GENERATED_HEADER, prose, table } from './markdown.js';
import { valueText } from './schema-markdown.js';

export interface CliOptions {
  /**
   * The directory Seine runs from. Defaults that are paths inside it name this machine's checkout; the reference
   * shows them relative to `<install dir>` instead.
   */
  installDir?: string;
}

/** The command's full name, as typed: `seine lab up`. */
export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Subcommands the help lists (hidden ones and commander's implicit `help` left out). */
function subcommands(cmd: Command): Command[] {
  return cmd
    .createHelp()
    .visibleCommands(cmd)
    .filter((c) => cmd.commands.includes(c));
}

/** The command and every visible subcommand below it, depth first. */
export function allCommands(cmd: Command): Command[] {
  return [cmd, ...subcommands(cmd).flatMap(allCommands)];
}

function argumentTerm(arg: Argument): string {
  const name = `${arg.name()}${arg.variadic ? '...' : ''}`;
  return arg.required ? `<${name}>` : `[${name}]`;
}

function defaultText(value: unknown, description: string | undefined, options: CliOptions): string {
  if (description) return prose(description);
  if (value === undefined) return '';
  if (typeof value === 'string' && options.installDir && value.startsWith(options.installDir)) return code(`<install dir>${value.slice(options.installDir.length)}`);
  return valueText(value);
}

function choicesText(choices: readonly string[] | undefined): string {
  return choices ? choices.map(code).join(', ') : '';
}

/** A table without the optional columns no row fills (most options have no default and no fixed choices). */
function compactTable(head: readonly string[], rows: ReadonlyArray<readonly string[]>, optional: ReadonlySet<string>): string {
  const kept = head.map((h, i) => !optional.has(h) || rows.some((r) => r[i] !== '')).map((keep, i) => (keep ? i : -1)).filter((i) => i >= 0);
  return table(
    kept.map((i) => head[i]!),
    rows.map((r) => kept.map((i) => r[i]!)),
  );
}

const OPTIONAL_COLUMNS: ReadonlySet<string> = new Set(['Required', 'Default', 'Allowed values']);

function argumentsTable(args: readonly Argument[], options: CliOptions): string {
  return compactTable(
    ['Argument', 'Required', 'Description', 'Default', 'Allowed values'],
    args.map((a) => [code(argumentTerm(a)), a.required ? 'yes' : '', prose(a.description), defaultText(a.defaultValue, a.defaultValueDescription, options), choicesText(a.argChoices)]),
    OPTIONAL_COLUMNS,
  );
}

function optionsTable(opts: readonly Option[], options: CliOptions): string {
  return compactTable(
    ['Option', 'Required', 'Description', 'Default', 'Allowed values'],
    opts.map((o) => [
      code(o.flags),
      o.mandatory ? 'yes' : '',
      prose(`${o.description}${o.envVar ? ` (environment: ${o.envVar})` : ''}`),
      defaultText(o.defaultValue, o.defaultValueDescription, options),
      choicesText(o.argChoices),
    ]),
    OPTIONAL_COLUMNS,
  );
}

function commandSection(cmd: Command, options: CliOptions): string {
  const help = cmd.createHelp();
  const args = help.visibleArguments(cmd);
  // The help option is the same on every command: said once at the top.
  const opts = help.visibleOptions(cmd).filter((o) => cmd.options.includes(o));
  const subs = subcommands(cmd);
  return blocks([
    `## ${code(commandPath(cmd))}`,
    prose(cmd.description()),
    ['```', help.commandUsage(cmd), '```'].join('\n'),
    ...(args.length ? ['Arguments:', argumentsTable(args, options)] : []),
    ...(opts.length ? ['Options:', optionsTable(opts, options)] : []),
    ...(subs.length ? ['Commands:', table(['Command', 'Description'], subs.map((s) => [`[${code(commandPath(s))}](#${anchorOf(commandPath(s))})`, prose(s.summary() || s.description())]))] : []),
  ]).trimEnd();
}

/** docs/reference/cli.md. */
export function cliMarkdown(program: Command, options: CliOptions = {}): string {
  const commands = allCommands(program);
  const depth = (c: Command): number => commandPath(c).split(' ').length - 1;
  return blocks([
    GENERATED_HEADER,
    '# Command line',
    `Every ${code(program.name())} command, as its ${code('--help')} shows it. Every command also takes ${code('-h, --help')}.${options.installDir ? ` ${code('<install dir>')} is the directory Seine is installed in.` : ''}`,
    commands.map((c) => `${'  '.repeat(depth(c))}- [${code(commandPath(c))}](#${anchorOf(commandPath(c))})`).join('\n'),
    ...commands.map((c) => commandSection(c, options)),
  ]);
}
