// Writes the reference: npm run docs:reference (which builds first, then runs this from dist/).
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../util/paths.js';
import { generateReference, REFERENCE_DIR } from './generate.js';

const dir = join(repoRoot(), REFERENCE_DIR);
const files = await generateReference();
mkdirSync(dir, { recursive: true });
// A page the generator no longer makes would otherwise stay behind, stale.
for (const name of readdirSync(dir)) if (!files.has(name)) rmSync(join(dir, name));
for (const [name, content] of files) writeFileSync(join(dir, name), content);
process.stdout.write(`wrote ${[...files.keys()].map((n) => `${REFERENCE_DIR}/${n}`).join(', ')}\n`);
