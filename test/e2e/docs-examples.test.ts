// The docs' walk-throughs, run as written (their shell blocks, with the stock kubectl and the `seine` CLI) in one
// 2-node lab: docs/secondary-networks.md's "Try it in the lab" and MultiNetworkPolicy, the walk-throughs of
// docs/service-chains.md, docs/network-policy.md and docs/services.md, docs/traceflow.md's "Try it", "Secondary
// networks" and "Live traffic", and docs/metrics.md's query. docs/lab.md's session runs in lab-cli.test.ts, the cloud profiles' "Try it
// in the lab" in lab-cloud.test.ts: each starts and removes labs of its own.
// What they say they show, they show; where a doc prints output, the command prints that output (addresses, ports
// and names aside).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/host/exec.js';
import type { Lab } from '../../src/lab/lab.js';
import { repoRoot } from '../../src/util/paths.js';
import { docBlock as block } from '../harness/doc-blocks.js';
import { startTestLab } from '../harness/lab.js';
import { TEST_LEDGER_ROOT } from '../harness/sandbox.js';

/** A doc's block without what starts a lab and points kubectl at it: this test's lab is up and KUBECONFIG set. */
const inThisLab = (script: string): string =>
  script
    .split('\n')
    .filter((l) => !/^seine lab up\b|^export KUBECONFIG=/.test(l))
    .join('\n');

/** The JSON array or object `text` starts with, whatever follows it. */
function leadingJson(text: string): string {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '[' || c === '{') depth++;
    else if ((c === ']' || c === '}') && --depth === 0) return text.slice(0, i + 1);
  }
  throw new Error(`no whole JSON value at the start of ${JSON.stringify(text.slice(0, 80))}`);
}

/** A trace diagram with what differs from run to run masked: addresses, ports, port names, the DSCP tag. */
const masked = (text: string): string[] =>
  text
    .split('\n')
    .filter(Boolean)
    .map((l) =>
      l
        .replace(/\d+\.\d+\.\d+\.\d+/g, 'IP')
        .replace(/IP:\d+/g, 'IP:PORT')
        .replace(/\(port [^)]+\)/g, '(port P)')
        .replace(/([0-9a-f]{2}:){5}[0-9a-f]{2}/g, 'MAC')
        .replace(/DSCP tag \d+/, 'DSCP tag N'),
    );

describe('docs: walk-throughs run as written', () => {
  let lab: Lab;
  const root = repoRoot();
  /** Runs a doc's shell block in this lab, `seine` as a user has it (SEINE_LAB_NAME names this lab for `seine lab`). */
  const runBlock = async (script: string): Promise<string> => {
    const prelude = `seine() { node ${join(root, 'bin', 'seine')} "$@"; }\n`;
    const { stdout } = await run('bash', ['-c', `${prelude}set -e\n${script}`], {
      cwd: root,
      env: { ...process.env, KUBECONFIG: lab.kubeconfigPath, SEINE_LAB_ROOT: TEST_LEDGER_ROOT, SEINE_LAB_NAME: lab.plan.name },
      timeoutMs: 300_000,
    });
    return stdout;
  };

  beforeAll(async () => {
    lab = await startTestLab({ nodes: 2 });
    // `seine lab exec` finds a lab by its status file, which a supervised lab writes.
    lab.writeStatus();
  }, 180_000);

  afterAll(async () => {
    await lab?.down();
  }, 120_000);

  it('service chains: the example chain becomes Ready, counts chained packets, and the servers see the last hop\'s mark', async () => {
    let stdout: string;
    try {
      stdout = await runBlock(block(join(root, 'docs', 'service-chains.md'), '## Try it'));
    } finally {
      // The Traceflow walk-through has a client of its own in the same namespace.
      await runBlock('kubectl delete -f manifests/examples/service-chain.yaml --ignore-not-found --wait=true\n');
    }
    expect(stdout).toMatch(/^servicechain\.crd\.seine\.dev\/web condition met$/m);
    // NAME NETWORK INDEX HOPS READY STATUS PACKETS AGE (the pod network's chain has no NETWORK): Ready, packets counted.
    const row = /^web\s+(?:[a-z0-9./-]+\s+)?\d+\s+3\s+(\d+)\/(\d+)\s+Ready\s+(\d+)/m.exec(stdout);
    expect(row).not.toBeNull();
    expect(row![1]).toBe(row![2]);
    expect(Number(row![3])).toBeGreaterThan(0);
    // web-1's rule counts what reaches port 80 with the inspector's mark, DSCP 24 (nft names it cs3).
    expect(stdout).toMatch(/tcp dport 80 ip dscp cs3 counter packets \d+ bytes \d+/);
  }, 400_000);

  it('MultiNetworkPolicy: connects the client, refuses the other pod on vlan100 only, and reports the policy enforced and realized', async () => {
    const stdout = await runBlock(block(join(root, 'docs', 'secondary-networks.md'), '## MultiNetworkPolicy'));
    const lines = stdout.split('\n').filter((l) => /^(connects|refused)$/.test(l));
    expect(lines).toEqual(['connects', 'refused', 'connects']);
    expect(stdout).toMatch(/^NetworksEnforced: enforced on default\/vlan100$/m);
    // Realized follows the agents' reports (within a second or so): the condition is there, whichever count it has reached.
    expect(stdout).toMatch(/^Realized: realized on \d of 1 nodes/m);
  }, 400_000);

  it('Traceflow: the trace of the Service prints the path the doc shows, and the NetworkPolicy verdicts it names', async () => {
    const doc = join(root, 'docs', 'traceflow.md');
    // Its nodes are named after this lab, not after the default lab.
    const nodes = (s: string): string => s.replaceAll('seine-node', `${lab.plan.name}-node`);
    const stdout = await runBlock(nodes(inThisLab(block(doc, '## Try it'))));
    expect(masked(stdout.slice(stdout.indexOf('default/client -> ')))).toEqual(masked(nodes(block(doc, '## Try it', ''))));

    // "With a NetworkPolicy that isolates web for ingress and admits only port 8080": dropped at 80, allowed at 8080.
    const text = readFileSync(doc, 'utf8');
    const claim = /ends in `(Verdict: Dropped by NetworkPolicy default\/)<name>( rule isolation-ingress)`[\s\S]*?shows `NetworkPolicy\s+(Allowed by NetworkPolicy default\/)<name>( rule ingress-0 \(Ingress\))`/.exec(text);
    expect(claim).not.toBeNull();
    const [, dropped1, dropped2, allowed1, allowed2] = claim!;
    const policy = 'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web-8080-only, namespace: default}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  policyTypes: [Ingress]\n  ingress: [{ports: [{port: 8080, protocol: TCP}]}]\n';
    const traced = await runBlock(
      `kubectl apply -f - <<'YAML'\n${policy}YAML\n` +
        // Realized on the node before the traces (the CLI shows it): a trace before would see no policy yet.
        `for i in $(seq 120); do seine get netpol web-8080-only | grep -q ' 1/1 ' && break; sleep 1; done\n` +
        'seine trace default/client default/web || true\nseine trace default/client default/web --port 8080\n',
    );
    expect(traced).toContain(`${dropped1}web-8080-only${dropped2}`);
    expect(traced).toMatch(new RegExp(`NetworkPolicy\\s+${`${allowed1}web-8080-only${allowed2}`.replace(/[()]/g, '\\$&')}`));
  }, 400_000);

  it('secondary networks: cnf-b has the interfaces its annotation asks for, with the static address and MAC, and the pools count them', async () => {
    const stdout = await runBlock(inThisLab(block(join(root, 'docs', 'secondary-networks.md'), '## Try it in the lab')));
    // The jsonpath output ends without a newline: the next command's output follows on its line.
    const status = JSON.parse(leadingJson(stdout.slice(stdout.indexOf('[{')))) as Array<{ name: string; interface?: string; ips?: string[]; mac?: string; default?: boolean; 'default-route'?: string[] }>;
    expect(status.map((s) => [s.name, s.interface])).toEqual([['seine', 'eth0'], ['default/vlan100', 'access0'], ['default/mgmt', 'net2'], ['default/blue', 'net3']]);
    expect(status.find((s) => s.name === 'default/mgmt')).toMatchObject({ ips: ['10.30.0.8'], mac: '02:00:00:00:30:08' });
    // The pod network is the default network; the default route goes through the overlay, as the annotation asks.
    expect(status.filter((s) => s.default).map((s) => s.name)).toEqual(['seine']);
    expect(status.find((s) => s.name === 'default/blue')?.['default-route']).toEqual(['10.50.0.1']);
    for (const ifname of ['eth0', 'access0', 'net2', 'net3']) expect(stdout).toMatch(new RegExp(`^${ifname}@\\S+\\s+UP\\s`, 'm'));
    // NAME GATEWAY PREFIX VLAN TOTAL USED AGE: both pods hold an address of vlan100 (pods of the other cases may too).
    const used = /^vlan100\s+\S+\s+\d+\s+100\s+\d+\s+(\d+)\s/m.exec(stdout);
    expect(Number(used?.[1])).toBeGreaterThanOrEqual(2);
  }, 300_000);

  it('Traceflow on a secondary network: the trace over vlan100 prints the path the doc shows, and blue goes through the tunnel', async () => {
    const doc = join(root, 'docs', 'traceflow.md');
    const nodes = (s: string): string => s.replaceAll('seine-node', `${lab.plan.name}-node`);
    const stdout = await runBlock(nodes(block(doc, '## Secondary networks')));
    expect(masked(stdout.slice(stdout.indexOf('default/left -> ')))).toEqual(masked(nodes(block(doc, '## Secondary networks', ''))));
    // "--network blue goes through the overlay's tunnel instead": the lines the doc quotes.
    const said = /`--network blue` goes through the overlay's tunnel instead \(`(Forwarded into tunnel to) seine-node2 \([\d.]+\)\s+(\[Forward\])`, then `(Received from) seine-node1 (\[Classifier\]: through the tunnel of VNI 5001)`\)/.exec(readFileSync(doc, 'utf8'));
    expect(said).not.toBeNull();
    const blue = await runBlock('seine trace default/left default/right --network blue\n');
    expect(blue).toMatch(new RegExp(`${said![1]} ${lab.plan.name}-node2 \\([\\d.]+\\) ${said![2]!.replace(/[[\]]/g, '\\$&')}`));
    expect(blue).toContain(`${said![3]} ${lab.plan.name}-node1 ${said![4]}`);
    expect(blue).toMatch(/^Verdict: Delivered$/m);
  }, 300_000);

  it('NetworkPolicy: the client connects, the other pod and then the quarantined client are refused, the Admin tier is realized', async () => {
    const stdout = await runBlock(block(join(root, 'docs', 'network-policy.md'), '## Try it'));
    expect(stdout.split('\n').filter((l) => /^(connects|refused)$/.test(l))).toEqual(['connects', 'refused', 'refused']);
    // Realized follows the agents' reports: the condition is there, whichever count it has reached.
    expect(stdout).toMatch(/realized on \d of 2 nodes/);
  }, 300_000);

  it('Services: the ClusterIP and the node port answer with a server\'s name, and only web-2 once web-1 is deleted', async () => {
    const stdout = await runBlock(inThisLab(block(join(root, 'docs', 'services.md'), '## Try it (lab)', 'sh', 1)));
    // The block prints the kubectl table, then one answer per request: 4 through the ClusterIP, 1 through the node port, 1 after the deletion.
    const answers = stdout.split('\n').filter((l) => /^web-\d$/.test(l));
    expect(answers).toHaveLength(6);
    for (const a of answers.slice(0, 5)) expect(['web-1', 'web-2']).toContain(a);
    expect(answers.at(-1)).toBe('web-2');
    expect(stdout).toMatch(/^service\/web\s+NodePort\s/m);
  }, 300_000);

  it('Traceflow, live traffic: the ping the trace takes is answered like every other, and its path ends delivered', async () => {
    const doc = join(root, 'docs', 'traceflow.md');
    // The doc's pods as "Try it" leaves them: without the policy the case above applied (it drops pings to web).
    await runBlock(
      'kubectl delete networkpolicy web-8080-only --ignore-not-found\n' +
        "WEB=$(kubectl get pod web -o jsonpath='{.status.podIP}')\n" +
        'for i in $(seq 120); do seine lab exec default/client -- ping -c 1 -W 1 $WEB >/dev/null && break; sleep 1; done\n',
    );
    const stdout = await runBlock(block(doc, '## Live traffic'));
    // Every ping answered (the traced one is delivered, not stopped at the port), as the doc says.
    expect(stdout).toMatch(/^30 packets transmitted, 30 received, 0% packet loss/m);
    const said = /prints the packet it took under the header\s+\(`(Captured: ICMP) [\d.]+ -> [\d.]+`\)[\s\S]*?ending in `(Verdict: Delivered)`/.exec(readFileSync(doc, 'utf8'));
    expect(said).not.toBeNull();
    const web = (await run('kubectl', ['get', 'pod', 'web', '-o', 'jsonpath={.status.podIP}'], { env: { ...process.env, KUBECONFIG: lab.kubeconfigPath } })).stdout.trim();
    expect(stdout).toMatch(new RegExp(`^${said![1]} \\d+\\.\\d+\\.\\d+\\.\\d+ -> ${web.replace(/\./g, '\\.')}$`, 'm'));
    expect(stdout).toMatch(new RegExp(`^${said![2]}$`, 'm'));
  }, 300_000);

  it("metrics: the doc's query of the first node's agent prints its CNI request counters", async () => {
    const stdout = await runBlock(block(join(root, 'docs', 'metrics.md'), '# Metrics and health'));
    // The pods the walk-throughs above made were added by CNI on the nodes: ADDs counted, by outcome.
    expect(stdout).toMatch(/^seine_agent_cni_requests_total\{[^}]*command="ADD"[^}]*\} [1-9]\d*$/m);
  }, 120_000);
});
