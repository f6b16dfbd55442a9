import { CoreV1Api, type CoreV1Event, type V1ObjectReference } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { logger } from '../util/log.js';
import { MERGE_PATCH } from './api.js';

export interface EventSource {
  component: string;
  host?: string;
}

export interface InvolvedObject {
  kind: string;
  apiVersion: string;
  name: string;
  namespace?: string;
  uid?: string;
}

/**
 * kube-apiserver's limits (pkg/apis/core/validation/events.go): an Event's message (note) at most 1024 bytes,
 * its reason at most 128; a longer one is refused with 422 and the Event is lost.
 */
export const EVENT_MESSAGE_MAX_BYTES = 1024;
export const EVENT_REASON_MAX_BYTES = 128;

/** `text` cut to at most `maxBytes` of UTF-8 on a character boundary, saying how long it was when cut. */
export function boundEventText(text: string, maxBytes: number): string {
  const total = Buffer.byteLength(text);
  if (total <= maxBytes) return text;
  const tail = ` ... (${total} bytes, cut)`;
  let used = Buffer.byteLength(tail);
  let head = '';
  for (const ch of text) {
    const n = Buffer.byteLength(ch);
    if (used + n > maxBytes) break;
    head += ch;
    used += n;
  }
  return head + tail;
}

/**
 * Records core/v1 Events (what `kubectl describe` shows). Repeats of the same reason and message for the same
 * object within a short window bump `count` on the existing Event instead of creating a new one.
 */
export class EventRecorder {
  private readonly recent = new Map<string, { name: string; namespace: string; count: number; at: number }>();
  private readonly log = logger('events');

  constructor(
    private readonly core: CoreV1Api,
    private readonly source: EventSource,
  ) {}

  async record(obj: InvolvedObject, type: 'Normal' | 'Warning', reasonText: string, messageText: string): Promise<void> {
    // Bounded here, the one place Events are written, so no caller can produce one the API server refuses.
    const reason = boundEventText(reasonText, EVENT_REASON_MAX_BYTES);
    const message = boundEventText(messageText, EVENT_MESSAGE_MAX_BYTES);
    const namespace = obj.namespace ?? 'default';
    const key = `${obj.uid ?? `${namespace}/${obj.name}`}|${reason}|${message}`;
    const now = new Date();
    const prior = this.recent.get(key);
    try {
      if (prior && now.getTime() - prior.at < 10 * 60_000) {
        prior.count++;
        prior.at = now.getTime();
        await this.core.patchNamespacedEvent(
          { name: prior.name, namespace: prior.namespace, body: { count: prior.count, lastTimestamp: now.toISOString() } },
          MERGE_PATCH,
        );
        return;
      }
      const involvedObject: V1ObjectReference = { kind: obj.kind, apiVersion: obj.apiVersion, name: obj.name, namespace: obj.namespace, uid: obj.uid };
      const name = `${obj.name}.${randomBytes(8).toString('hex')}`;
      const event: CoreV1Event = {
        metadata: { name, namespace },
        involvedObject,
        type,
        reason,
        message,
        source: this.source,
        reportingComponent: this.source.component,
        reportingInstance: this.source.host ?? '',
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      };
      await this.core.createNamespacedEvent({ namespace, body: event });
      this.recent.set(key, { name, namespace, count: 1, at: now.getTime() });
      if (this.recent.size > 1000) this.recent.delete(this.recent.keys().next().value!);
    } catch (e) {
      // Events are best effort, as in Kubernetes: never fail the operation that reports.
      this.log.warn({ err: String(e), reason }, 'could not record event');
    }
  }
}
