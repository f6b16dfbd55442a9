// The demo's steps: each one timed, its time said when it ends, and a table of them all at the end, so that a run
// shows where its time went.
import { renderTable } from './table.js';

export class DemoSteps {
  private readonly done: Array<{ title: string; ms: number; ok: boolean }> = [];

  constructor(
    private readonly say: (line: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Runs one step; says how long it took, also when it fails. */
  async run<T>(title: string, fn: () => Promise<T>): Promise<T> {
    const from = this.now();
    let ok = false;
    try {
      const result = await fn();
      ok = true;
      return result;
    } finally {
      const ms = this.now() - from;
      this.done.push({ title, ms, ok });
      this.say(`  [${title}: ${seconds(ms)} s${ok ? '' : ', failed'}]`);
    }
  }

  /** Every step with its time, and the total. */
  summary(): string {
    const total = this.done.reduce((sum, s) => sum + s.ms, 0);
    return renderTable(['step', 'seconds'], [...this.done.map((s) => [s.ok ? s.title : `${s.title} (failed)`, seconds(s.ms)]), ['total', seconds(total)]]);
  }
}

const seconds = (ms: number): string => (ms / 1000).toFixed(1);
