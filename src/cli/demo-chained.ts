import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { spawn } from 'node:child_process';
import { commandLine, run } from '../host/exec.js';
import { netnsPath } from '../host/netns.js';
import { loadKubeConfig } from '../k8s/kubeconfig.js';
import { podNetnsName } from '../lab/kubelet.js';
import type { LabStatus } from '../lab/lab.js';
import { renderTable } from './table.js';

const NAMESPACE = 'seine-chained-demo';
/** Pods start, Seine comes up and takes them over, the controller and agents follow policies: generous on a busy machine. */
const TIMEOUT_MS = 120_000;
const WEB_PORT = 8080;

export interface ChainedDemoContext {
  /** The lab, brought up with a cloud profile and without Seine. */
  status: () => LabStatus;
  say: (line: string) => void;
  /** Installs Seine in the running lab, as applying its manifest would. */
  installSeine: () => Promise<void>;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const got = await probe().catch(() => undefined);
    if (got !== undefined) return got;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${TIMEOUT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * The third way Seine is used, on the lab's stand-in of a cloud (EKS: the AWS VPC CNI): pods run on the cloud's CNI
 * alone; Seine is installed and takes them over without a restart while a ping keeps going; a NetworkPolicy and a
 * Service then apply to them.
 */
export async function runChainedDemo({ status, say, installSeine }: ChainedDemoContext): Promise<void> {
  const st = status();
  const core = loadKubeConfig(st.kubeconfig).makeApiClient(CoreV1Api);
  const kubectl = (args: string[], input?: string): Promise<{ stdout: string }> => run('kubectl', ['--kubeconfig', st.kubeconfig, '--cache-dir', `${st.stateDir}/kube-cache`, ...args], { timeoutMs: 60_000, ...(input ? { input } : {}) });
  await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
  const [n1, n2] = [st.nodes[0]!, st.nodes[st.nodes.length - 1]!];
  const pod = (name: string, node: string, labels: Record<string, string>, command: string[]): object => ({ metadata: { name, labels }, spec: { nodeName: node, containers: [{ name: 'main', image: 'lab', command }] } });
  const specs = [
    pod('web', n1.name, { app: 'web' }, ['nc', '-lk', '-n', '-p', String(WEB_PORT)]),
    pod('client', n2.name, { role: 'client' }, ['sleep', 'infinity']),
    pod('other', n2.name, {}, ['sleep', 'infinity']),
  ];
  for (const body of specs) await core.createNamespacedPod({ namespace: NAMESPACE, body: body as V1Pod });
  const names = ['web', 'client', 'other'];
  const pods = await until('pods Running', async () => {
    const items = (await core.listNamespacedPod({ namespace: NAMESPACE })).items;
    const ready = names.map((n) => items.find((p) => p.metadata?.name === n && p.status?.phase === 'Running' && p.status.podIP));
    return ready.every((p) => p) ? (ready as V1Pod[]) : undefined;
  });
  const nodeNs = (p: V1Pod): string => netnsPath(st.nodes.find((n) => n.name === p.spec!.nodeName)!.netns);
  const podNs = (p: V1Pod): string => netnsPath(podNetnsName(st.name, p.metadata!.uid!));
  const routeOf = async (p: V1Pod): Promise<string> => (await run('ip', ['-4', 'route', 'show', `${p.status!.podIP}/32`], { netns: nodeNs(p) })).stdout.trim();
  const table = async (): Promise<string> => renderTable(['pod', 'node', 'ip', "node's route to it"], await Promise.all(pods.map(async (p) => [p.metadata!.name, p.spec!.nodeName, p.status!.podIP, await routeOf(p)])));
  say(`\nCNI chaining mode: pods running on the cloud's CNI alone (the lab's stand-in of the AWS VPC CNI: /32 addresses, eni* veths, no overlay)`);
  say(await table());

  const [web, client, other] = pods as [V1Pod, V1Pod, V1Pod];
  const argv = commandLine('ping', ['-n', '-i', '0.2', '-W', '1', web.status!.podIP!], podNs(client));
  const ping = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
  let pingOut = '';
  ping.stdout.on('data', (d: Buffer) => (pingOut += d.toString()));
  say(`\nclient pings web every 0.2 s; installing Seine (chained after the cloud's CNI, as manifests/seine-${st.profile ?? 'eks'}.yml would)...`);
  try {
    await installSeine();
    await until('every pod taken over', async () => ((await Promise.all(pods.map(routeOf))).every((r) => r.includes('seine-gw0')) ? true : undefined));
    await new Promise((r) => setTimeout(r, 2000));
  } finally {
    const exited = new Promise((r) => ping.once('exit', r));
    ping.kill('SIGINT');
    await exited;
  }
  const seqs = [...pingOut.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1]));
  const sent = seqs.length ? Math.max(...seqs) : 0;
  say(`taken over without a restart: ${seqs.length} of ${sent} pings answered while Seine came in`);
  say(await table());
  const events = (await kubectl(['get', 'events', '-A', '--field-selector', 'reason=PodsTakenOver', '-o', 'custom-columns=NODE:.involvedObject.name,MESSAGE:.message', '--no-headers'])).stdout.trim();
  if (events) say(`Node events:\n${events}`);

  const probe = async (from: V1Pod, host: string, port: number): Promise<boolean> => run('nc', ['-z', '-n', '-w', '2', host, String(port)], { netns: podNs(from), timeoutMs: 10_000 }).then(() => true, () => false);
  const policy = {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'web-from-clients', namespace: NAMESPACE },
    spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ port: WEB_PORT }] }] },
  };
  say(`\nNetworkPolicy ${NAMESPACE}/web-from-clients: only pods labelled role=client may reach web on ${WEB_PORT}`);
  await kubectl(['apply', '-f', '-'], JSON.stringify(policy));
  const verdicts = await until('the policy enforced on the taken-over pods', async () => {
    const [c, o] = [await probe(client, web.status!.podIP!, WEB_PORT), await probe(other, web.status!.podIP!, WEB_PORT)];
    return c && !o ? [c, o] : undefined;
  });
  say(renderTable(['from', 'to web:8080'], [['client', verdicts[0] ? 'allowed' : 'blocked'], ['other', verdicts[1] ? 'allowed' : 'blocked']]));

  const svc = await core.createNamespacedService({ namespace: NAMESPACE, body: { metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: WEB_PORT }] } } });
  const clusterIp = svc.spec!.clusterIP!;
  await until('the Service answering through OVS', async () => ((await probe(client, clusterIp, 80)) ? true : undefined));
  say(`Service ${NAMESPACE}/web: client -> ClusterIP ${clusterIp}:80 reaches web through Seine's proxy in OVS`);
}
