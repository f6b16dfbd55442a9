import { buildProgram, subcommandOf } from './program.js';

try {
  await (await buildProgram(subcommandOf(process.argv))).parseAsync(process.argv);
} catch (e) {
  process.stderr.write(`seine: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
}
