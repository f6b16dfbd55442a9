import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ApiServer } from '../../src/lab/apiserver/index.js';

/** The stock kubectl: a client nobody here wrote. */
export const KUBECTL = process.env.KUBECTL ?? '/usr/bin/kubectl';
export const CRDS_DIR = resolve('crds');
export const CRD_NAMES = ['network-attachment-definitions.k8s.cni.cncf.io', 'ippools.crd.seine.dev', 'servicechains.crd.seine.dev', 'clusternetworkpolicies.policy.networking.k8s.io', 'multi-networkpolicies.k8s.cni.cncf.io', 'traceflows.crd.seine.dev'];

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** An embedded API server in its own temp dir (kubeconfig, kubectl cache); close() removes it all. */
export interface Cluster {
  api: ApiServer;
  dir: string;
  kubeconfig: string;
  kubectl(args: string[], input?: string): Promise<KubectlResult>;
  close(): Promise<void>;
}

export async function startCluster(prefix = 'seine-crds-'): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  let api: ApiServer;
  try {
    api = await ApiServer.start({});
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const kubeconfig = join(dir, 'kubeconfig');
  api.writeKubeconfig(kubeconfig);
  const kubectl = (args: string[], input?: string): Promise<KubectlResult> =>
    new Promise((done) => {
      const child = execFile(KUBECTL, ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        done({ code, stdout: String(stdout), stderr: String(stderr) });
      });
      // A command that exits before reading its input makes the write fail with EPIPE: its exit code tells.
      if (input !== undefined) child.stdin?.on('error', () => undefined).end(input);
    });
  return {
    api,
    dir,
    kubeconfig,
    kubectl,
    async close() {
      try {
        await api.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** kubectl's stdout, or a failure that shows what kubectl said. */
export async function kubectlOk(c: Cluster, args: string[], input?: string): Promise<string> {
  const r = await c.kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** `kubectl apply -f crds/`, then waits until every CRD is Established; returns apply's output. */
export async function installCrds(c: Cluster): Promise<string> {
  const applied = await c.kubectl(['apply', '-f', CRDS_DIR]);
  if (applied.code !== 0) throw new Error(`kubectl apply -f crds failed: ${applied.stderr}`);
  const waited = await c.kubectl(['wait', '--for=condition=Established', '--timeout=30s', ...CRD_NAMES.map((n) => `crd/${n}`)]);
  if (waited.code !== 0) throw new Error(`CRDs not established: ${waited.stderr}`);
  return applied.stdout;
}
