import { existsSync, readdirSync } from 'node:fs';
import { run, CommandError } from './exec.js';

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

/** Creates a named netns with loopback up. Fails if it already exists. */
export async function createNetns(name: string): Promise<string> {
  await run('ip', ['netns', 'add', name]);
  const path = netnsPath(name);
  await run('ip', ['link', 'set', 'lo', 'up'], { netns: path });
  return path;
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

/** SIGKILLs the processes in a named netns (`ip netns pids`), and waits a little for them to go. */
async function killProcessesIn(name: string): Promise<void> {
  const pids = async (): Promise<number[]> =>
    (await run('ip', ['netns', 'pids', name]).then((r) => r.stdout, () => ''))
      .split('\n')
      .map((l) => Number.parseInt(l, 10))
      .filter((p) => Number.isInteger(p) && p > 1 && p !== process.pid);
  const found = await pids();
  if (!found.length) return;
  for (const pid of found) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  for (let i = 0; i < 50 && (await pids()).length; i++) await new Promise((r) => setTimeout(r, 20));
}
