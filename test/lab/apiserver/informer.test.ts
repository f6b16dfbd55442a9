import { CoreV1Api, KubeConfig, makeInformer, type Informer, type ObjectCache, type V1ConfigMap } from '@kubernetes/client-node';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, startServer, type TestServer } from './helpers.js';

// @kubernetes/client-node informers against the server: events, and recovery after a server restart
// and after 410 Gone. client-node's ListWatch stops on non-410 errors (e.g. connection refused), so
// the test restarts it with a backoff as a real consumer does.

interface Harness {
  informer: Informer<V1ConfigMap> & ObjectCache<V1ConfigMap>;
  events: string[];
  lists: () => number;
  errors: () => number;
  stop(): Promise<void>;
}

function startInformer(kubeconfig: string): Harness {
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  let lists = 0;
  let errors = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const informer = makeInformer<V1ConfigMap>(kc, '/api/v1/namespaces/default/configmaps', () => {
    lists++;
    return core.listNamespacedConfigMap({ namespace: 'default' });
  });
  const events: string[] = [];
  informer.on('add', (o) => events.push(`add:${o.metadata!.name}`));
  informer.on('update', (o) => events.push(`update:${o.metadata!.name}:${JSON.stringify(o.data ?? {})}`));
  informer.on('delete', (o) => events.push(`delete:${o.metadata!.name}`));
  let backoff = 50;
  informer.on('connect', () => (backoff = 50));
  informer.on('error', () => {
    errors++;
    if (stopped) return;
    timer = setTimeout(() => void informer.start().catch(() => undefined), backoff);
    backoff = Math.min(backoff * 2, 1000);
  });
  void informer.start();
  return {
    informer,
    events,
    lists: () => lists,
    errors: () => errors,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await informer.stop();
    },
  };
}

const names = (h: Harness): string[] => h.informer.list('default').map((c) => c.metadata!.name!).sort();

describe('client-node informers', () => {
  it('see adds, updates and deletes (over TLS with the generated kubeconfig)', async () => {
    const srv = await startServer();
    const cms = srv.api.resource('v1', 'configmaps');
    cms.create({ metadata: { name: 'pre', namespace: 'default' }, data: { a: '1' } });
    const h = startInformer(srv.api.kubeconfig());
    try {
      await eventually(() => h.events.includes('add:pre'), 30_000, 'initial add');
      cms.create({ metadata: { name: 'new', namespace: 'default' }, data: { b: '1' } });
      cms.patch('pre', { data: { a: '2' } }, { namespace: 'default' });
      cms.delete('new', { namespace: 'default' });
      await eventually(() => h.events.includes('delete:new'), 30_000, 'delete event');
      expect(h.events).toEqual(['add:pre', 'add:new', 'update:pre:{"a":"2"}', 'delete:new']);
      expect(names(h)).toEqual(['pre']);
      expect(h.informer.get('pre', 'default')?.data).toEqual({ a: '2' });
    } finally {
      await h.stop();
      await srv.stop();
    }
  });

  it('recovers after the API server restarts on the same port from its dataFile', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'seine-apiserver-'));
    const dataFile = join(dir, 'store.json');
    const first = await startServer({ dataFile }, dir);
    const port = first.api.port;
    let cms = first.api.resource('v1', 'configmaps');
    for (const n of ['keep', 'change', 'drop']) cms.create({ metadata: { name: n, namespace: 'default' }, data: { v: '1' } });
    const h = startInformer(first.api.kubeconfig({ plain: true }));
    let second: TestServer | undefined;
    try {
      await eventually(() => names(h).length === 3, 30_000, 'initial list');
      const rvBefore = first.api.store.resourceVersion;
      await first.close();
      // While the server is down the informer's re-watch fails and the consumer backs off.
      await eventually(() => h.errors() > 0, 30_000, 'watch failure while down');
      second = await startServer({ dataFile, port }, first.dir);
      // Same objects, and the resourceVersion sequence goes on.
      expect(second.api.store.resourceVersion).toBe(rvBefore);
      cms = second.api.resource('v1', 'configmaps');
      expect(cms.list({ namespace: 'default' }).items.map((c) => c.metadata.name).sort()).toEqual(['change', 'drop', 'keep']);
      const created = cms.create({ metadata: { name: 'after', namespace: 'default' }, data: { v: '1' } });
      expect(Number(created.metadata.resourceVersion)).toBeGreaterThan(rvBefore);
      cms.patch('change', { data: { v: '2' } }, { namespace: 'default' });
      cms.delete('drop', { namespace: 'default' });
      await eventually(() => names(h).join() === 'after,change,keep' && h.informer.get('change', 'default')?.data?.v === '2', 30_000, 'informer caught up after restart');
      expect(h.events).toEqual(expect.arrayContaining(['add:after', 'update:change:{"v":"2"}', 'delete:drop']));
    } finally {
      await h.stop();
      await second?.stop();
      await first.stop();
    }
  });

  it('relists after 410 Gone when its resourceVersion fell out of the retained history', async () => {
    const srv = await startServer({ historySize: 2 });
    const cms = srv.api.resource('v1', 'configmaps');
    cms.create({ metadata: { name: 'one', namespace: 'default' } });
    const h = startInformer(srv.api.kubeconfig());
    try {
      await eventually(() => names(h).join() === 'one', 30_000, 'initial list');
      expect(h.lists()).toBe(1);
      // Cut the watch and move history past the informer's resourceVersion before it comes back.
      srv.api.closeWatches();
      for (let i = 0; i < 5; i++) cms.create({ metadata: { name: `burst${i}`, namespace: 'default' } });
      cms.delete('one', { namespace: 'default' });
      await eventually(() => h.lists() === 2, 30_000, 'relist after 410');
      await eventually(() => names(h).join() === 'burst0,burst1,burst2,burst3,burst4', 30_000, 'cache matches the server');
      expect(h.events).toContain('delete:one');
      // And it keeps watching afterwards.
      cms.create({ metadata: { name: 'later', namespace: 'default' } });
      await eventually(() => names(h).includes('later'), 30_000, 'live event after relist');
      expect(h.errors()).toBe(0);
    } finally {
      await h.stop();
      await srv.stop();
    }
  });
});
