// The agent's copy of its node's share: the controller's messages applied in order, kept on disk so that a
// restarted agent enforces the last policies it received before the controller is reachable again.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ShareGroup, ShareMessage, SharePolicy } from '../controller/shares.js';
import type { NodeShare } from './resolve.js';

const FORMAT = 1;

interface StoredShare {
  format: number;
  policies: Record<string, SharePolicy>;
  groups: Record<string, ShareGroup>;
  pods?: string[];
}

export class ShareStore {
  private policies = new Map<string, SharePolicy>();
  private groups = new Map<string, ShareGroup>();
  /** The node's pods the controller had taken into account when it sent the share. */
  private pods = new Set<string>();

  /** `file`: where the share is kept (absent: memory only). */
  constructor(private readonly file?: string) {}

  /** Loads what was kept; a missing or unreadable file is an empty share (the controller sends a full one). */
  load(): { loaded: boolean; problem?: string } {
    if (!this.file) return { loaded: false };
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch {
      return { loaded: false };
    }
    try {
      const s = JSON.parse(text) as StoredShare;
      if (s.format !== FORMAT || typeof s.policies !== 'object' || typeof s.groups !== 'object') return { loaded: false, problem: `unknown format in ${this.file}` };
      this.policies = new Map(Object.entries(s.policies));
      this.groups = new Map(Object.entries(s.groups));
      this.pods = new Set(s.pods ?? []);
      return { loaded: true };
    } catch (e) {
      return { loaded: false, problem: `${this.file}: ${String(e)}` };
    }
  }

  /** A full share replaces everything (`replace`), later ones change what they name. Persisted before returning. */
  apply(messages: readonly ShareMessage[], replace: boolean): void {
    if (replace) {
      this.policies.clear();
      this.groups.clear();
      this.pods.clear();
    }
    for (const m of messages) {
      if (m.kind === 'pods') this.pods = new Set(m.value.uids);
      else if (m.kind === 'policy') {
        if (m.value) this.policies.set(m.uid, m.value);
        else this.policies.delete(m.uid);
      } else if (m.value) this.groups.set(m.key, m.value);
      else this.groups.delete(m.key);
    }
    this.save();
  }

  /** The share as the datapath resolution takes it. */
  share(): NodeShare {
    return {
      policies: [...this.policies.values()],
      groups: new Map([...this.groups].map(([k, g]) => [k, g.members])),
    };
  }

  /** Whether a policy of the share applies to the pod (on the CNI ADD path: no copy of the share is made). */
  appliesTo(podUid: string): boolean {
    for (const p of this.policies.values()) if (p.pods.some((x) => x.uid === podUid)) return true;
    return false;
  }

  /** Whether any policy of the share is a secondary network's (MultiNetworkPolicy). */
  hasNetworkPolicies(): boolean {
    for (const p of this.policies.values()) if (p.policy.network) return true;
    return false;
  }

  /** Whether the share took the pod into account (its policies, if any, are in it). */
  knows(podUid: string): boolean {
    return this.pods.has(podUid);
  }

  get size(): { policies: number; groups: number } {
    return { policies: this.policies.size, groups: this.groups.size };
  }

  /** Written to a temporary file and renamed: a crash leaves the old share or the new one, never half of one. */
  private save(): void {
    if (!this.file) return;
    mkdirSync(dirname(this.file), { recursive: true });
    const stored: StoredShare = { format: FORMAT, policies: Object.fromEntries(this.policies), groups: Object.fromEntries(this.groups), pods: [...this.pods] };
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, JSON.stringify(stored));
    renameSync(tmp, this.file);
  }
}
