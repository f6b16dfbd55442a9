// Durable JSON file: every write is temp file + fsync + rename + directory fsync, so that a crash
// (or power loss) leaves either the previous state or the new one, never a torn file.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

const TMP_MARK = '.tmp-';

export class JsonFile {
  constructor(readonly path: string) {}

  /** The file's text, or undefined when it does not exist. */
  async read(): Promise<string | undefined> {
    try {
      return await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  async write(value: unknown): Promise<void> {
    const dir = dirname(this.path);
    const tmp = `${this.path}${TMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`;
    const fh = await open(tmp, 'wx', 0o600);
    try {
      try {
        await fh.writeFile(`${JSON.stringify(value, null, 1)}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.path);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    // The rename is only durable once the directory entry is.
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }

  /** Creates the directory and removes temp files a crashed writer left behind. */
  async prepare(): Promise<void> {
    const dir = dirname(this.path);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const prefix = `${basename(this.path)}${TMP_MARK}`;
    for (const name of await readdir(dir)) {
      if (name.startsWith(prefix)) await rm(join(dir, name), { force: true });
    }
  }
}
