import { Command, Option } from 'commander';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { loadKubeConfig } from '../k8s/kubeconfig.js';
import { ResourceLedger } from '../host/ledger.js';
import { netnsPath } from '../host/netns.js';
import { DEFAULT_STATE_ROOT, Lab, labStateDir, type LabStatus } from '../lab/lab.js';
import type { CloudProfile } from '../lab/cloud/plan.js';
import { askLab, serveLabControl, type LabAction } from '../lab/control.js';
import { podNetnsName } from '../lab/kubelet.js';
import { renderTable } from './table.js';
import { runDemo } from './demo.js';
import { runChainedDemo } from './demo-chained.js';
import { DemoSteps } from './demo-steps.js';

interface Common {
  name: string;
  stateRoot: string;
}

const nameOpt = (): Option => new Option('--name <name>', 'lab name (default: $SEINE_LAB_NAME, else seine)').default(process.env.SEINE_LAB_NAME || 'seine');
const rootOpt = (): Option => new Option('--state-root <dir>', 'where labs keep their state').default(process.env.SEINE_LAB_ROOT ?? DEFAULT_STATE_ROOT).hideHelp();

function serveLog(o: Common): string {
  return join(o.stateRoot, `${o.name}.log`);
}

interface UpFlags {
  nodes: string;
  profile?: CloudProfile;
  withoutSeine?: boolean;
}

function parseProfile(v: string): CloudProfile {
  if (v !== 'eks' && v !== 'aks') throw new Error(`--profile must be eks or aks, not '${v}'`);
  return v;
}

/** Asks the running lab's supervisor to do `action` (src/lab/control.ts); resolves when it is done. */
async function control(o: Common, action: LabAction): Promise<void> {
  readStatus(o);
  await askLab(labStateDir(o.name, o.stateRoot), action);
}

function readStatus(o: Common): LabStatus {
  const file = join(labStateDir(o.name, o.stateRoot), 'status.json');
  if (!existsSync(file)) throw new Error(`lab '${o.name}' is not running (no ${file}); start it with: seine lab up --name ${o.name}`);
  return JSON.parse(readFileSync(file, 'utf8')) as LabStatus;
}

/** `lab up`: starts the lab supervisor in the background and relays its progress until it is ready. */
async function up(o: Common & UpFlags): Promise<void> {
  mkdirSync(o.stateRoot, { recursive: true });
  const log = serveLog(o);
  const fd = openSync(log, 'a');
  const main = new URL('./main.js', import.meta.url).pathname;
  const cloudArgs = [...(o.profile ? ['--profile', o.profile] : []), ...(o.withoutSeine ? ['--without-seine'] : [])];
  const child = spawn(process.execPath, [main, 'lab', 'serve', '--name', o.name, '--nodes', o.nodes, '--state-root', o.stateRoot, ...cloudArgs], {
    detached: true,
    stdio: ['ignore', fd, fd, 'ipc'],
    env: { ...process.env, SEINE_LOG_LEVEL: process.env.SEINE_LOG_LEVEL ?? 'info' },
  });
  closeSync(fd);
  const started = Date.now();
  await new Promise<void>((resolve, reject) => {
    child.on('message', (m: { step?: string; error?: string }) => {
      if (m.error) reject(new Error(`${m.error}\n(supervisor log: ${log})`));
      else if (m.step) process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${m.step}\n`);
      if (m.step === 'ready') resolve();
    });
    child.on('exit', (code) => reject(new Error(`lab supervisor exited (${code}); see ${log}`)));
  });
  child.disconnect();
  child.unref();
  const st = readStatus(o);
  process.stdout.write(`lab '${o.name}' is up with ${st.nodes.length} nodes${st.profile ? ` (${st.profile}${st.seineInstalled ? ', Seine chained' : ', without Seine'})` : ''} in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
  process.stdout.write(`  export KUBECONFIG=${st.kubeconfig}\n  kubectl get nodes -o wide\n`);
}

/** `lab serve`: the long-running lab process (API server, scheduler, kubelets). Started by `lab up`. */
async function serve(o: Common & UpFlags): Promise<void> {
  const send = (m: object): void => {
    if (process.connected) process.send?.(m);
  };
  let lab: Lab;
  try {
    lab = await Lab.up({
      name: o.name,
      nodes: Number(o.nodes),
      stateRoot: o.stateRoot,
      ...(o.profile ? { profile: o.profile, seine: !o.withoutSeine } : {}),
      progress: (step) => send({ step: step === 'ready' ? 'writing status' : step }),
    });
  } catch (e) {
    send({ error: e instanceof Error ? e.message : String(e) });
    process.exit(1);
  }
  lab.ledger.directory(serveLog(o));
  serveLabControl(lab);
  lab.writeStatus();
  send({ step: 'ready' });
  const timer = setInterval(() => lab.writeStatus(), 1000);
  const shutdown = async (): Promise<void> => {
    clearInterval(timer);
    await lab.down();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown());
  process.on('SIGINT', () => void shutdown());
}

function status(o: Common & { json?: boolean }): void {
  const st = readStatus(o);
  if (o.json) {
    process.stdout.write(JSON.stringify(st, null, 2) + '\n');
    return;
  }
  process.stdout.write(`lab ${st.name}: api ${st.apiServer}, supervisor pid ${st.supervisorPid}${st.controllerPid ? `, seine-controller pid ${st.controllerPid}` : ''}, kubeconfig ${st.kubeconfig}\n`);
  if (st.profile) process.stdout.write(`profile ${st.profile}: the cloud's CNI on every node, Seine ${st.seineInstalled ? 'chained after it' : 'not installed'}\n`);
  process.stdout.write(`external host: netns ${st.externalNetns}, ip ${st.externalIp}; fabric netns ${st.fabricNetns}\n`);
  if (st.controllerMetrics) process.stdout.write(`seine-controller metrics: ${st.controllerMetrics}\n`);
  process.stdout.write('\n');
  process.stdout.write(
    renderTable(
      ['node', 'netns', 'ip', ...(st.profile ? ['pod block', 'ENIs', 'install-cni'] : []), 'ovsdb-server', 'ovs-vswitchd', 'seine-agent', 'agent metrics', 'pods'],
      st.nodes.map((n) => [
        n.name,
        n.netns,
        n.ip,
        ...(st.profile ? [n.cloud?.podBlock ?? '-', (n.cloud?.enis ?? []).map((e) => `${e.name} ${e.ip} (${e.podCidr})`).join(', '), n.installCni ?? '-'] : []),
        n.ovs.ovsdbServer,
        n.ovs.ovsVswitchd,
        n.agent ?? '-',
        n.agentMetrics ?? '-',
        n.pods.length,
      ]),
    ) + '\n',
  );
  const pods = st.nodes.flatMap((n) => n.pods.map((p) => [`${p.namespace}/${p.name}`, n.name, p.netns, p.state, p.pids.join(',') || '-']));
  if (pods.length) process.stdout.write('\n' + renderTable(['pod', 'node', 'netns', 'state', 'pids'], pods) + '\n');
}

async function exec(o: Common & { node?: string; external?: boolean }, target: string | undefined, command: string[]): Promise<void> {
  // Without a pod target the first word is already part of the command.
  const argv = (o.node || o.external) && target !== undefined ? [target, ...command] : command;
  let netns: string;
  if (o.external) netns = netnsPath(`${o.name}-external`);
  else if (o.node) netns = netnsPath(o.node.startsWith(`${o.name}-`) ? o.node : `${o.name}-${o.node}`);
  else {
    if (!target || !target.includes('/')) throw new Error('give a pod as NAMESPACE/NAME, or --node NODE, or --external');
    const [namespace, name] = target.split('/') as [string, string];
    const kc = loadKubeConfig(readStatus(o).kubeconfig);
    const pod = await kc.makeApiClient(CoreV1Api).readNamespacedPod({ name, namespace });
    netns = netnsPath(podNetnsName(o.name, pod.metadata!.uid!));
  }
  if (!existsSync(netns)) throw new Error(`network namespace ${netns} does not exist`);
  if (argv.length === 0) throw new Error('no command given (seine lab exec TARGET -- CMD ...)');
  const child = spawn('nsenter', [`--net=${netns}`, '--', ...argv], { stdio: 'inherit' });
  const code = await new Promise<number>((r) => child.on('exit', (c, sig) => r(c ?? (sig ? 128 : 1))));
  process.exitCode = code;
}

async function down(o: Common): Promise<void> {
  const dir = labStateDir(o.name, o.stateRoot);
  const ledger = ResourceLedger.load(dir);
  if (!ledger) {
    rmSync(serveLog(o), { force: true });
    process.stdout.write(`lab '${o.name}' is not running\n`);
    return;
  }
  if (ledger.ownerAlive) {
    process.stdout.write(`stopping lab '${o.name}' (supervisor pid ${ledger.contents.owner.pid})\n`);
    process.kill(ledger.contents.owner.pid, 'SIGTERM');
    const deadline = Date.now() + 120_000;
    while (ledger.ownerAlive && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  }
  // The supervisor is gone; whatever it did not remove, remove now.
  const left = ResourceLedger.load(dir);
  if (left) await left.release();
  rmSync(serveLog(o), { force: true });
  process.stdout.write(`lab '${o.name}' removed\n`);
}

/**
 * `lab demo`: up, show traffic, down (unless --keep); then CNI chaining mode on a second lab, one standing in for
 * EKS, whose running pods Seine takes over.
 */
async function demo(o: Common & { nodes: string; keep?: boolean; chained: boolean }): Promise<void> {
  const say = (l: string): void => void process.stdout.write(l + '\n');
  const steps = new DemoSteps(say);
  await steps.run('lab up', () => up(o));
  try {
    say('');
    await runDemo({ status: readStatus(o), say, steps });
  } finally {
    if (o.keep) say(`\nthe lab keeps running: export KUBECONFIG=${readStatus(o).kubeconfig}; 'seine lab down --name ${o.name}' removes it`);
    else await steps.run('lab down', () => down(o));
  }
  if (o.chained) {
    // Lab names are at most 10 characters.
    const eks = { ...o, name: `${o.name.slice(0, 9)}e`, nodes: '2', profile: 'eks' as const, withoutSeine: true };
    say(`\nlab '${eks.name}': a stand-in of EKS (the AWS VPC CNI on every node), without Seine`);
    await steps.run('EKS lab up', () => up(eks));
    try {
      await steps.run('CNI chaining mode', () => runChainedDemo({ status: () => readStatus(eks), say, installSeine: () => control(eks, '/install-seine') }));
    } finally {
      if (o.keep) say(`\nthe lab keeps running: export KUBECONFIG=${readStatus(eks).kubeconfig}; 'seine lab down --name ${eks.name}' removes it`);
      else await steps.run('EKS lab down', () => down(eks));
    }
  }
  say(`\n${steps.summary()}`);
  say('\ndemo passed');
}

export function labCommand(): Command {
  const lab = new Command('lab').description('a whole cluster on this machine: API server, nodes as namespaces with real OVS, kubelets');
  lab
    .command('up')
    .description('start a lab in the background')
    .addOption(nameOpt())
    .addOption(rootOpt())
    .option('--nodes <n>', 'number of nodes', '2')
    .addOption(new Option('--profile <cloud>', "stand in for a cloud: its CNI on every node (eks: AWS VPC CNI, aks: Azure CNI), Seine chained after it").argParser(parseProfile))
    .option('--without-seine', "with --profile: the cloud's CNI alone (install Seine later with 'seine lab install-seine')")
    .action((o) => up(o));
  lab
    .command('demo')
    .description('bring up a lab, run pods on every node, show traffic between them, pods on a VLAN and an overlay network, a Service, network policies taking effect, traffic through a service chain and the metrics, tear it down; then Seine taking over the running pods of a lab standing in for EKS')
    .addOption(nameOpt())
    .addOption(rootOpt())
    .option('--nodes <n>', 'number of nodes', '3')
    .option('--keep', 'leave the lab running afterwards')
    .option('--no-chained', 'skip the CNI chaining part (a second lab standing in for EKS)')
    .action((o) => demo(o));
  lab
    .command('serve', { hidden: true })
    .addOption(nameOpt())
    .addOption(rootOpt())
    .option('--nodes <n>', 'number of nodes', '2')
    .addOption(new Option('--profile <cloud>').argParser(parseProfile))
    .option('--without-seine')
    .action((o) => serve(o));
  for (const [action, description, done] of [
    ['install-seine', "install Seine in a running cloud lab, as applying its manifest would (chained after the cloud's CNI; running pods are adopted)", 'Seine installed in'],
    ['uninstall-seine', "remove Seine from a running cloud lab: every node given back to the cloud's CNI, pods keep running", 'Seine removed from'],
  ] as const) {
    lab
      .command(action)
      .description(description)
      .addOption(nameOpt())
      .addOption(rootOpt())
      .action(async (o: Common) => {
        await control(o, `/${action}`);
        process.stdout.write(`${done} lab '${o.name}'\n`);
      });
  }
  lab
    .command('status')
    .description('nodes, namespaces and the pids of every process the lab started')
    .addOption(nameOpt())
    .addOption(rootOpt())
    .option('--json', 'machine-readable output')
    .action((o) => status(o));
  lab
    .command('exec')
    .description('run a command inside a pod (NAMESPACE/NAME), a node (--node) or the external host (--external)')
    .addOption(nameOpt())
    .addOption(rootOpt())
    .option('--node <node>', 'a node namespace')
    .option('--external', 'the external host namespace')
    .argument('[target]', 'NAMESPACE/POD')
    .argument('[command...]', 'the command, after --')
    .action((target: string | undefined, command: string[], o) => exec(o, target, command));
  lab
    .command('kubeconfig')
    .description('print the path of the lab kubeconfig')
    .addOption(nameOpt())
    .addOption(rootOpt())
    .action((o) => {
      process.stdout.write(readStatus(o).kubeconfig + '\n');
    });
  lab.command('down').description('remove everything the lab made').addOption(nameOpt()).addOption(rootOpt()).action((o) => down(o));
  return lab;
}
