import { existsSync, readdirSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { run, CommandError, shellQuote } from './exec.js';

export const NETNS_DIR = '/var/run/netns';

/** Path of a named network namespace as made by `ip netns add`. */
export function netnsPath(name: string): string {
  return `${NETNS_DIR}/${name}`;
}

export function netnsExists(nameOrPath: string): boolean {
  return existsSync(nameOrPath.includes('/') ? nameOrPath : netnsPath(nameOrPath));
}

export function listNetns(): string[] {
  try {
    return readdirSync(NETNS_DIR);
  } catch {
    return [];
  }
}

/** Creates a named netns with loopback up (one process: each spawn blocks the caller's event loop). Fails if it already exists. */
export async function createNetns(name: string): Promise<string> {
  const q = shellQuote(name);
  await run('sh', ['-ec', `ip netns add ${q}\nip -n ${q} link set lo up`]);
  return netnsPath(name);
}

/**
 * Deletes a named netns, and first ends every process still running in it (as a container runtime ends what is
 * left in a sandbox: a process a pod's command put in the background outlives the command otherwise, holding
 * the namespace alive). Only namespaces Seine made are deleted, so whatever runs in them is Seine's or a test
 * pod's. Already gone is fine.
 */
export async function deleteNetns(name: string): Promise<void> {
  if (!netnsExists(name)) return;
  await killProcessesIn(name);
  try {
    await run('ip', ['netns', 'del', name]);
  } catch (e) {
    if (e instanceof CommandError && /No such file/.test(e.stderr)) return;
    throw e;
  }
}

/**
 * The processes whose network namespace is `path`, as `ip netns pids` finds them (same nsfs device and inode),
 * read from /proc without starting a process.
 */
export async function pidsInNetns(path: string): Promise<number[]> {
  let ns;
  try {
    ns = await stat(path);
  } catch {
    return [];
  }
  const pids = (await readdir('/proc')).map(Number).filter((p) => Number.isInteger(p) && p > 1 && p !== process.pid);
  const inNs = await Promise.all(
    pids.map(async (pid) => {
      try {
        const s = await stat(`/proc/${pid}/ns/net`);
        return s.ino === ns.ino && s.dev === ns.dev;
      } catch {
        return false; // gone meanwhile, or not ours to look at
      }
    }),
  );
  return pids.filter((_, i) => inNs[i]);
}

/** SIGKILLs the processes in a named netns, and waits a little for them to go. */
async function killProcessesIn(name: string): Promise<void> {
  const path = netnsPath(name);
  const found = await pidsInNetns(path);
  if (!found.length) return;
  for (const pid of found) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  for (let i = 0; i < 50 && (await pidsInNetns(path)).length; i++) await new Promise((r) => setTimeout(r, 20));
}
