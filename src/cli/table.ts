import Table from 'cli-table3';

/** A borderless, kubectl-style table: upper-case headers, columns separated by spaces. */
export function renderTable(head: string[], rows: Array<Array<string | number | undefined>>): string {
  const t = new Table({
    head: head.map((h) => h.toUpperCase()),
    chars: {
      top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
      left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '   ',
    },
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
  });
  for (const r of rows) t.push(r.map((c) => (c === undefined ? '<none>' : String(c))));
  return t.toString().split('\n').map((l) => l.trimEnd()).join('\n');
}
