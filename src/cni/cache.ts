// The runtime's record of each attachment's ADD result, kept on disk so DEL/CHECK/GC get prevResult
// and the original arguments even after a restart. Same layout and JSON as libcni's cniCacheV1:
// <dir>/results/<network>-<containerID>-<ifname>.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CniCode, CniError } from './errors.js';
import type { CniResult } from './types.js';

export const CACHE_KIND = 'cniCacheV1';

/** One attachment as cached (libcni field names, so either can read the other's files). */
export interface CachedAttachment {
  kind: typeof CACHE_KIND;
  containerId: string;
  /** The network configuration list used for ADD, base64 of its JSON (libcni stores bytes). */
  config: string;
  ifName: string;
  networkName: string;
  netns?: string;
  cniArgs?: Array<[string, string]>;
  capabilityArgs?: Record<string, unknown>;
  result?: CniResult;
}

export interface AttachmentKey {
  network: string;
  containerId: string;
  ifname: string;
}

function isCached(v: unknown): v is CachedAttachment {
  if (typeof v !== 'object' || v === null) return false;
  const c = v as Record<string, unknown>;
  return c.kind === CACHE_KIND && typeof c.containerId === 'string' && typeof c.ifName === 'string' && typeof c.networkName === 'string';
}

export class ResultCache {
  constructor(readonly dir: string) {}

  get resultsDir(): string {
    return join(this.dir, 'results');
  }

  /** File of one attachment; the parts are validated names (no '/'), so this stays inside the dir. */
  path(key: AttachmentKey): string {
    return join(this.resultsDir, `${key.network}-${key.containerId}-${key.ifname}`);
  }

  /** Writes atomically (temp file, fsync, rename): a crash leaves the old entry or the new, never half. */
  async write(entry: Omit<CachedAttachment, 'kind'>): Promise<void> {
    await mkdir(this.resultsDir, { recursive: true, mode: 0o700 });
    const file = this.path({ network: entry.networkName, containerId: entry.containerId, ifname: entry.ifName });
    const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(JSON.stringify({ kind: CACHE_KIND, ...entry }));
      await fh.sync();
    } catch (e) {
      await fh.close();
      await rm(tmp, { force: true });
      throw e;
    }
    await fh.close();
    try {
      await rename(tmp, file);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }

  /** The entry, undefined when there is none; code 6 when the file exists but cannot be decoded. */
  async read(key: AttachmentKey): Promise<CachedAttachment | undefined> {
    let text: string;
    try {
      text = await readFile(this.path(key), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new CniError(CniCode.DecodeFailure, `cannot decode cached result ${this.path(key)}`, (e as Error).message);
    }
    if (!isCached(parsed)) throw new CniError(CniCode.DecodeFailure, `cached result ${this.path(key)} is not a ${CACHE_KIND} entry`);
    return parsed;
  }

  /** Removes the entry; already gone is fine. */
  async remove(key: AttachmentKey): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  /** Every decodable entry (optionally of one container), in file-name order; others are skipped. */
  async list(containerId?: string): Promise<CachedAttachment[]> {
    let names: string[];
    try {
      names = (await readdir(this.resultsDir)).filter((n) => !n.includes('.tmp-')).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: CachedAttachment[] = [];
    for (const name of names) {
      try {
        const parsed: unknown = JSON.parse(await readFile(join(this.resultsDir, name), 'utf8'));
        if (isCached(parsed) && (!containerId || parsed.containerId === containerId)) out.push(parsed);
      } catch {
        /* unreadable or foreign file: not an attachment we can act on */
      }
    }
    return out;
  }
}

/** The conflist an entry was added with (decoded from its base64 bytes). */
export function cachedConfig(entry: CachedAttachment): unknown {
  return JSON.parse(Buffer.from(entry.config, 'base64').toString('utf8'));
}
