import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ShareStore } from '../../src/policy/agent/share-store.js';
import { PolicyComputation } from '../../src/policy/controller/compute.js';
import { NodeShares, type ShareMessage } from '../../src/policy/controller/shares.js';
import { compileNetworkPolicy } from '../../src/policy/model/networkpolicy.js';

describe('the agent\'s share store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'seine-share-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('applies the controller\'s messages, keeps them across a restart, and survives a bad file', () => {
    const c = new PolicyComputation();
    const shares = new NodeShares(c);
    c.upsertNamespace('x', {});
    c.upsertPod({ uid: 'web', namespace: 'x', name: 'web', labels: { app: 'web' }, ip: '10.0.0.1', node: 'n1', namedPorts: [] });
    c.upsertPod({ uid: 'cl', namespace: 'x', name: 'cl', labels: { app: 'client' }, ip: '10.0.0.2', node: 'n2', namedPorts: [] });
    const np = compileNetworkPolicy({ metadata: { namespace: 'x', name: 'p', uid: 'p' }, spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ _from: [{ podSelector: { matchLabels: { app: 'client' } } }] }] } });
    c.upsertPolicy(np.policy, np.groups);
    c.drain();
    const file = join(dir, 'n1', 'share.json');
    const store = new ShareStore(file);
    expect(store.load()).toEqual({ loaded: false });
    store.apply(JSON.parse(shares.snapshot('n1').json) as ShareMessage[], true);
    expect(store.size).toEqual({ policies: 1, groups: 1 });
    c.upsertPod({ uid: 'cl2', namespace: 'x', name: 'cl2', labels: { app: 'client' }, ip: '10.0.0.3', node: 'n2', namedPorts: [] });
    c.drain();
    store.apply(JSON.parse(shares.update('n1').json) as ShareMessage[], false);

    // A restarted agent has the same share before hearing from the controller.
    const again = new ShareStore(file);
    expect(again.load()).toEqual({ loaded: true });
    expect(again.share()).toEqual(store.share());
    expect([...again.share().groups.values()][0]!.map((m) => m.ip)).toEqual(['10.0.0.2', '10.0.0.3']);
    expect(again.share().policies[0]!.pods.map((p) => p.uid)).toEqual(['web']);
    // The node's pods the controller has seen, and those a policy applies to, also after the restart.
    expect([again.knows('web'), again.appliesTo('web'), again.appliesTo('cl'), again.knows('cl')]).toEqual([true, true, false, false]);

    // The policy goes.
    c.deletePolicy('p');
    c.drain();
    again.apply(JSON.parse(shares.update('n1').json) as ShareMessage[], false);
    expect(again.size).toEqual({ policies: 0, groups: 0 });
    expect(again.appliesTo('web')).toBe(false);

    writeFileSync(file, '{not json');
    const broken = new ShareStore(file);
    expect(broken.load().loaded).toBe(false);
    expect(broken.load().problem).toMatch(/share\.json/);
    expect(broken.size).toEqual({ policies: 0, groups: 0 });
  });
});
