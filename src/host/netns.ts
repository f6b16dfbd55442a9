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

/** Deletes a named netns; already gone is fine. */
export async function deleteNetns(name: string): Promise<void> {
  if (!netnsExists(name)) return;
  try {
    await run('ip', ['netns', 'del', name]);
  } catch (e) {
    if (e instanceof CommandError && /No such file/.test(e.stderr)) return;
    throw e;
  }
}
