import { renderActions, type Action } from './actions.js';
import { checkToken, checkUint } from './match.js';

export interface Bucket {
  /** Defaults to the bucket's position, as OVS assigns. */
  id?: number;
  /** select groups: relative share of traffic. */
  weight?: number;
  /** The bucket is live only while this port is up (select and ff groups). */
  watchPort?: number;
  watchGroup?: number;
  actions: Action[];
}

export interface Group {
  id: number;
  type: 'all' | 'select' | 'indirect' | 'ff';
  /** select groups: `hash` hashes `fields`; `dp_hash` lets the datapath hash. */
  selectionMethod?: 'hash' | 'dp_hash';
  /** Fields hashed by selection_method=hash, e.g. ['ip_src', 'ip_dst', 'tcp_dst']. */
  fields?: string[];
  selectionMethodParam?: number;
  buckets: Bucket[];
}

function renderBucket(b: Bucket): string {
  const parts: string[] = [];
  if (b.id !== undefined) parts.push(`bucket_id:${checkUint('bucket_id', b.id, 32)}`);
  if (b.weight !== undefined) parts.push(`weight:${checkUint('weight', b.weight, 16)}`);
  if (b.watchPort !== undefined) parts.push(`watch_port:${checkUint('watch_port', b.watchPort, 32)}`);
  if (b.watchGroup !== undefined) parts.push(`watch_group:${checkUint('watch_group', b.watchGroup, 32)}`);
  for (const a of b.actions) {
    if (a.type === 'goto_table' || a.type === 'conjunction') throw new RangeError(`group bucket: ${a.type} is not allowed in a bucket`);
  }
  parts.push(`actions=${renderActions(b.actions)}`);
  return `bucket=${parts.join(',')}`;
}

/** A group in ovs-ofctl syntax (`group_id=..,type=..,bucket=..`). */
export function renderGroup(g: Group): string {
  const parts = [`group_id=${checkUint('group_id', g.id, 32)}`, `type=${g.type}`];
  if (g.type !== 'select' && (g.selectionMethod || g.fields || g.selectionMethodParam !== undefined)) {
    throw new RangeError(`group ${g.id}: selection settings apply to select groups only`);
  }
  if ((g.type === 'indirect' && g.buckets.length !== 1) || (g.type === 'ff' && !g.buckets.length)) {
    throw new RangeError(`group ${g.id}: ${g.type} group with ${g.buckets.length} buckets`);
  }
  if (g.selectionMethod) parts.push(`selection_method=${g.selectionMethod}`);
  if (g.selectionMethodParam !== undefined) parts.push(`selection_method_param=${checkUint('selection_method_param', g.selectionMethodParam, 64)}`);
  if (g.fields?.length) {
    if (g.selectionMethod !== 'hash') throw new RangeError(`group ${g.id}: fields need selection_method hash`);
    parts.push(`fields(${g.fields.map((f) => checkToken('group field', f)).join(',')})`);
  }
  parts.push(...g.buckets.map(renderBucket));
  return parts.join(',');
}
