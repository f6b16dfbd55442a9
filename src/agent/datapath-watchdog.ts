import { statSync } from 'node:fs';
import { join } from 'node:path';
import { logger } from '../util/log.js';

const CHECK_MS = 2000;
/** Flows are read at least this often even when ovs-vswitchd's pidfile has not changed (every tick without one). */
const FLOW_CHECK_MS = 30_000;

export interface DatapathWatchdogOptions {
  /** The OVS run directory (holds ovs-vswitchd.pid). */
  ovsRundir: string;
  /** Whether ovs-vswitchd still has the node's flows; throws when it cannot be asked (it is down). */
  flowsPresent: () => Promise<boolean>;
  /** Puts everything back; a failure is logged and tried again on the next check. */
  restore: () => Promise<void>;
}

/**
 * Detects an ovs-vswitchd restart (its flows are gone, and in the userspace datapath its tap devices come back
 * without addresses) and has everything put back. Every 2 s it stats the pidfile, which every start of
 * ovs-vswitchd writes anew, and reads the flows (an ovs-ofctl spawn) only when that changed, or every 30 s.
 */
export class DatapathWatchdog {
  private readonly log = logger('agent');
  private timer?: NodeJS.Timeout;
  private restoring?: Promise<void>;
  /** Which ovs-vswitchd (see vswitchdIdentity) last had its flows in place, and when that was seen. */
  private checked?: { id: string | undefined; at: number };

  constructor(private readonly o: DatapathWatchdogOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.check(), CHECK_MS);
  }

  /** Stops checking; a restore under way is waited for. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.restoring;
  }

  private async check(): Promise<void> {
    if (!this.timer || this.restoring) return;
    // A stat is cheap; dumping flows spawns ovs-ofctl.
    const id = this.vswitchdIdentity();
    const last = this.checked;
    if (id !== undefined && last && last.id === id && Date.now() - last.at < FLOW_CHECK_MS) return;
    try {
      if (await this.o.flowsPresent()) {
        this.checked = { id, at: Date.now() };
        return;
      }
    } catch (e) {
      this.log.warn({ err: String(e) }, 'cannot read flows (ovs-vswitchd down?)');
      return;
    }
    if (!this.timer) return;
    this.restoring = this.o
      .restore()
      .catch((e: unknown) => this.log.error({ err: String(e) }, 'datapath restore failed'))
      .finally(() => {
        this.restoring = undefined;
      });
  }

  /**
   * Every start of ovs-vswitchd writes its pidfile anew (a new inode and mtime). The file, not the pid: a
   * restarted OVS container often gets the same pid in its fresh pid namespace.
   */
  private vswitchdIdentity(): string | undefined {
    try {
      const st = statSync(join(this.o.ovsRundir, 'ovs-vswitchd.pid'), { bigint: true });
      return `${st.ino}:${st.mtimeNs}`;
    } catch {
      return undefined;
    }
  }
}
