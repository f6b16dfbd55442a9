// The seine-cni plugin binary: built from cmd/seine-cni (Go) by scripts/build-go.sh, which `npm run build`
// and scripts/setup.sh run. What the lab and install-cni put into a CNI bin dir as `seine`.
import { join } from 'node:path';
import { repoRoot } from '../util/paths.js';

export const SEINE_CNI_BINARY = join(repoRoot(), 'dist', 'bin', 'seine-cni');
