import { statSync } from 'node:fs';

/**
 * What a container's network namespace path holds now, compared with what it held when the attachment was
 * made: one stat, no spawn. `gone`: the path no longer exists (the runtime removed the sandbox); `replaced`:
 * another namespace is mounted there (the sandbox was re-made under the same path); `present` otherwise,
 * also when the path cannot be inspected (never release what may still be in use).
 */
export type SandboxState = 'present' | 'gone' | 'replaced';

/** The identity of the namespace at `netns` (device and inode of its nsfs file), or undefined when it cannot be read. */
export function sandboxIdentity(netns: string): string | undefined {
  try {
    const st = statSync(netns, { bigint: true });
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/** The state of an attachment's sandbox; `recordedId` is sandboxIdentity at ADD time (absent on old attachments). */
export function sandboxState(netns: string, recordedId: string | undefined): SandboxState {
  // An empty path (an attachment recorded without one) tells nothing.
  if (!netns) return 'present';
  let st;
  try {
    st = statSync(netns, { bigint: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'gone' : 'present';
  }
  if (recordedId === undefined) return 'present';
  return `${st.dev}:${st.ino}` === recordedId ? 'present' : 'replaced';
}
