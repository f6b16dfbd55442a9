// A running lab's control socket: `seine lab install-seine` and `uninstall-seine` ask the process that runs the
// lab (its supervisor) to act, one action at a time.
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import type { Lab } from './lab.js';

export type LabAction = '/install-seine' | '/uninstall-seine';

/** Where a lab's control socket is, in its state directory. */
export function labControlSocket(stateDir: string): string {
  return join(stateDir, 'control.sock');
}

/** Serves the lab's actions on its control socket, one at a time; the status file is rewritten after each. */
export function serveLabControl(lab: Lab): Server {
  const actions: Record<LabAction, () => Promise<void>> = { '/install-seine': () => lab.installSeine(), '/uninstall-seine': () => lab.uninstallSeine() };
  let busy = Promise.resolve();
  return createServer((req, res) => {
    const action = req.method === 'POST' ? actions[(req.url ?? '') as LabAction] : undefined;
    if (!action) {
      res.writeHead(404).end(JSON.stringify({ error: `no action ${req.method} ${req.url}` }));
      return;
    }
    busy = busy.then(async () => {
      try {
        await action();
        lab.writeStatus();
        res.writeHead(200).end('{}');
      } catch (e) {
        res.writeHead(500).end(JSON.stringify({ error: e instanceof Error ? e.message : String(e) }));
      }
    });
  }).listen(labControlSocket(lab.stateDir));
}

/** Asks the lab whose state directory is `stateDir` to do `action`; resolves when it is done. */
export async function askLab(stateDir: string, action: LabAction): Promise<void> {
  const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ socketPath: labControlSocket(stateDir), method: 'POST', path: action }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
  if (answer.status !== 200) throw new Error((JSON.parse(answer.body) as { error?: string }).error ?? answer.body);
}
