import { CoreV1Api } from '@kubernetes/client-node';
import { boundEventText, EVENT_MESSAGE_MAX_BYTES, EVENT_REASON_MAX_BYTES, EventRecorder } from '../../src/k8s/events.js';
import { loadKubeConfig } from '../../src/k8s/kubeconfig.js';
import { startServer, type TestServer } from '../lab/apiserver/helpers.js';

describe('Event text bounds', () => {
  it('leaves text within the limit alone', () => {
    expect(boundEventText('short', EVENT_MESSAGE_MAX_BYTES)).toBe('short');
    const exact = 'x'.repeat(EVENT_MESSAGE_MAX_BYTES);
    expect(boundEventText(exact, EVENT_MESSAGE_MAX_BYTES)).toBe(exact);
  });

  it('cuts longer text to the limit in UTF-8 bytes, on a character boundary, saying how long it was', () => {
    const long = `${'é'.repeat(700)}${'x'.repeat(105_000)}`;
    const out = boundEventText(long, EVENT_MESSAGE_MAX_BYTES);
    expect(Buffer.byteLength(out)).toBeLessThanOrEqual(EVENT_MESSAGE_MAX_BYTES);
    expect(out).not.toContain('\uFFFD');
    expect(out.startsWith('é'.repeat(400))).toBe(true);
    expect(out).toMatch(new RegExp(` \\.\\.\\. \\(${Buffer.byteLength(long)} bytes, cut\\)$`));
  });
});

describe('EventRecorder', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startServer();
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it('writes every Event within the API server limits, however long the message', async () => {
    const core = loadKubeConfig(srv.kubeconfig).makeApiClient(CoreV1Api);
    const recorder = new EventRecorder(core, { component: 'seine-test' });
    const message = Array.from({ length: 1000 }, (_, i) => `element ${i + 1}: mac: "x" is not a unicast MAC address`).join('; ');
    await recorder.record({ kind: 'Pod', apiVersion: 'v1', name: 'p', namespace: 'default', uid: 'u1' }, 'Warning', `R${'e'.repeat(200)}`, message);
    const [event] = (await core.listNamespacedEvent({ namespace: 'default' })).items;
    expect(Buffer.byteLength(event!.message!)).toBeLessThanOrEqual(EVENT_MESSAGE_MAX_BYTES);
    expect(event!.message!.startsWith('element 1: mac:')).toBe(true);
    expect(Buffer.byteLength(event!.reason!)).toBeLessThanOrEqual(EVENT_REASON_MAX_BYTES);
  });
});
