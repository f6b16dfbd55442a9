/**
 * Values kept from one computation to the next: what a computation asks for stays for the next one, the rest is
 * forgotten when it settles. For recomputations that mostly find what they made last time.
 */
export class KeptFromLast<V> {
  private last = new Map<string, V>();
  private next = new Map<string, V>();

  /** This computation's value for `key` so far, else the last computation's. */
  peek(key: string): V | undefined {
    return this.next.get(key) ?? this.last.get(key);
  }

  /** Keeps `value` for `key` (this computation asked for it). */
  keep(key: string, value: V): V {
    this.next.set(key, value);
    return value;
  }

  /** Ends a computation; says whether it left out a key the last one had. */
  settle(): boolean {
    const dropped = this.next.size !== this.last.size || [...this.last.keys()].some((k) => !this.next.has(k));
    this.last = this.next;
    this.next = new Map();
    return dropped;
  }
}
