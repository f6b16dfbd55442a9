import { CHAINED_CONFLIST_NAME, chainedAfter, choosePrimary, deriveChainedConfList, PrimaryConfError, type ConfDirEntry } from '../../../src/chaining/cnimode/conflist.js';
import { parseConfList } from '../../../src/cni/conf.js';
import { seineConfList } from '../../../src/primary/installcni/index.js';
import { AWS_CONFLIST, AZURE_CONFLIST, json, LOOPBACK_CONF, SOCKET } from './conflist-fixtures.js';

const seinePlugin = { type: 'seine', cniSocket: SOCKET };
const entry = (name: string, o: unknown): ConfDirEntry => ({ name, text: typeof o === 'string' ? o : json(o) });
const chainedFile = (): ConfDirEntry => entry(CHAINED_CONFLIST_NAME, deriveChainedConfList(entry('10-aws.conflist', AWS_CONFLIST), SOCKET).text);

describe('chained conflist derivation', () => {
  it("AWS: the primary's list, name, version, disableCheck and key order, Seine's plugin last", () => {
    const d = deriveChainedConfList(entry('10-aws.conflist', AWS_CONFLIST), SOCKET);
    expect(d.primary).toBe('10-aws.conflist');
    expect(d.primaryTypes).toEqual(['aws-cni', 'egress-cni', 'portmap']);
    expect(JSON.parse(d.text)).toEqual({ ...AWS_CONFLIST, plugins: [...AWS_CONFLIST.plugins, seinePlugin] });
    expect(Object.keys(JSON.parse(d.text) as object)).toEqual(['cniVersion', 'name', 'disableCheck', 'plugins']);
    // What a runtime makes of it: the cloud's network under its own name, in its own version.
    const list = parseConfList(d.text);
    expect(list).toMatchObject({ name: 'aws-cni', cniVersion: '0.4.0', disableCheck: true });
    expect(list.plugins.map((p) => p.type)).toEqual(['aws-cni', 'egress-cni', 'portmap', 'seine']);
    // Stable bytes: the same input never makes a different file.
    expect(deriveChainedConfList(entry('10-aws.conflist', structuredClone(AWS_CONFLIST)), SOCKET).text).toBe(d.text);
    expect(chainedAfter(d.text)).toEqual({ name: 'aws-cni', cniVersion: '0.4.0', primaryTypes: ['aws-cni', 'egress-cni', 'portmap'] });
  });

  it('Azure: azure-vnet and portmap, then Seine, in 0.3.0', () => {
    const d = deriveChainedConfList(entry('10-azure.conflist', AZURE_CONFLIST), SOCKET);
    expect(d.primaryTypes).toEqual(['azure-vnet', 'portmap']);
    expect(JSON.parse(d.text)).toEqual({ cniVersion: '0.3.0', name: 'azure', plugins: [...AZURE_CONFLIST.plugins, seinePlugin] });
    expect(parseConfList(d.text).cniVersion).toBe('0.3.0');
    expect(chainedAfter(d.text)?.primaryTypes).toEqual(['azure-vnet', 'portmap']);
  });

  it('a single-plugin .conf becomes a list, its name and version lifted', () => {
    const conf = { cniVersion: '0.4.0', name: 'mynet', type: 'bridge', bridge: 'cni0', ipam: { type: 'host-local', subnet: '10.22.0.0/16' } };
    const d = deriveChainedConfList(entry('10-mynet.conf', conf), SOCKET);
    expect(JSON.parse(d.text)).toEqual({ cniVersion: '0.4.0', name: 'mynet', plugins: [{ type: 'bridge', bridge: 'cni0', ipam: { type: 'host-local', subnet: '10.22.0.0/16' } }, seinePlugin] });
    expect(d.primaryTypes).toEqual(['bridge']);
    // .json is read as a single plugin too, as the runtime does.
    expect(deriveChainedConfList(entry('10-mynet.json', conf), SOCKET).text).toBe(d.text);
  });

  it('says what is wrong with a primary it cannot chain after', () => {
    const reason = (name: string, text: string): string => {
      try {
        deriveChainedConfList({ name, text }, SOCKET);
      } catch (e) {
        expect(e).toBeInstanceOf(PrimaryConfError);
        return (e as PrimaryConfError).message;
      }
      throw new Error(`${name} was accepted`);
    };
    const full = json(AWS_CONFLIST);
    expect(reason('10-aws.conflist', full.slice(0, full.length / 2))).toMatch(/^10-aws\.conflist: not valid JSON .*still being written/);
    expect(reason('10-aws.conflist', '')).toMatch(/empty \(still being written\?\)/);
    expect(reason('10-aws.conflist', '[1,2]')).toMatch(/not a JSON object/);
    expect(reason('10-aws.conflist', json({ cniVersion: '0.4.0', name: 'aws-cni' }))).toMatch(/not a valid network configuration list: .*plugins/);
    expect(reason('10-aws.conflist', json({ ...AWS_CONFLIST, plugins: [] }))).toMatch(/not a valid network configuration list/);
    expect(reason('10-old.conflist', json({ ...AZURE_CONFLIST, cniVersion: '0.2.0' }))).toMatch(/no supported CNI version/);
    expect(reason('10-x.conf', json({ cniVersion: '0.4.0', name: 'x' }))).toMatch(/not a valid network configuration: .*type/);
    // A list that already runs Seine (e.g. edited in place by hand): not the cloud's list to chain after.
    expect(reason('10-aws.conflist', json({ ...AWS_CONFLIST, plugins: [...AWS_CONFLIST.plugins, { type: 'seine' }] }))).toMatch(/already runs the 'seine' plugin \(aws-cni, egress-cni, portmap, seine\)/);
    expect(reason('10-seine.conf', json({ cniVersion: '1.0.0', name: 'seine', type: 'seine' }))).toMatch(/already runs the 'seine' plugin/);
  });
});

describe('choosing the primary in the conf dir', () => {
  it("takes the lexically first network config, passing over Seine's own files and other files", () => {
    const entries: ConfDirEntry[] = [
      entry('99-loopback.conf', LOOPBACK_CONF),
      entry('10-aws.conflist', AWS_CONFLIST),
      { name: 'README' },
      chainedFile(),
      entry('10-seine.conflist', seineConfList(SOCKET, false)),
      { name: '.seine-tmp-05-seine.conflist-12-abcd' },
      entry('20-other.conflist', AZURE_CONFLIST),
    ];
    const c = choosePrimary(entries, SOCKET);
    expect(c.primary).toBe('10-aws.conflist');
    expect(c.problem).toBeUndefined();
    expect(c.derived?.primaryTypes).toEqual(['aws-cni', 'egress-cni', 'portmap']);
    expect(c.files).toEqual([
      { name: '.seine-tmp-05-seine.conflist-12-abcd', why: "Seine's temporary file" },
      { name: '05-seine.conflist', why: "Seine's chained conflist" },
      { name: '10-aws.conflist', why: 'the primary' },
      { name: '10-seine.conflist', why: "Seine's primary-mode conflist" },
      { name: '20-other.conflist', why: 'sorts after the primary 10-aws.conflist' },
      { name: '99-loopback.conf', why: 'sorts after the primary 10-aws.conflist' },
      { name: 'README', why: 'not a network configuration (only .conf, .conflist, .json are)' },
    ]);
    // Seine's derived list takes the cloud's network, not Seine's primary-mode one, nor loopback.
    expect(JSON.parse(c.derived!.text)).toMatchObject({ name: 'aws-cni' });
  });

  it('a half-written primary is the primary, reported, not skipped for the next file', () => {
    const full = json(AZURE_CONFLIST);
    const c = choosePrimary([entry('10-azure.conflist', full.slice(0, 40)), entry('99-loopback.conf', LOOPBACK_CONF)], SOCKET);
    expect(c.derived).toBeUndefined();
    expect(c.primary).toBe('10-azure.conflist');
    expect(c.problem).toMatch(/^10-azure\.conflist: not valid JSON/);
  });

  it('while the last primary is gone, a file sorting after it is not taken; one sorting before it is', () => {
    const loopback = entry('99-loopback.conf', LOOPBACK_CONF);
    const gone = choosePrimary([chainedFile(), loopback], SOCKET, '10-aws.conflist');
    expect(gone.derived).toBeUndefined();
    expect(gone.problem).toMatch(/10-aws\.conflist: gone .*99-loopback\.conf sorts after it/);
    expect(choosePrimary([chainedFile()], SOCKET, '10-aws.conflist').problem).toMatch(/10-aws\.conflist: gone/);
    // Without that history (a first start) the first file is the primary, whatever it is.
    expect(choosePrimary([loopback], SOCKET).derived?.primaryTypes).toEqual(['loopback']);
    expect(choosePrimary([entry('10-aws.conflist', AWS_CONFLIST), loopback], SOCKET, '10-azure.conflist').derived?.primary).toBe('10-aws.conflist');
  });

  it("refuses a primary that sorts before Seine's list, and a foreign file under its name", () => {
    const early = choosePrimary([entry('00-multus.conf', { cniVersion: '0.4.0', name: 'multus', type: 'multus' }), entry('10-aws.conflist', AWS_CONFLIST)], SOCKET);
    expect(early.derived).toBeUndefined();
    expect(early.problem).toMatch(/00-multus\.conf: sorts before 05-seine\.conflist/);
    const squatter = choosePrimary([entry(CHAINED_CONFLIST_NAME, AZURE_CONFLIST), entry('10-aws.conflist', AWS_CONFLIST)], SOCKET);
    expect(squatter.derived).toBeUndefined();
    expect(squatter.problem).toMatch(/05-seine\.conflist: has the name of Seine's list but does not run the 'seine' plugin/);
    // A file under the primary-mode name that is not Seine's is a network like any other.
    expect(choosePrimary([entry('10-seine.conflist', AZURE_CONFLIST)], SOCKET).derived?.primaryTypes).toEqual(['azure-vnet', 'portmap']);
  });

  it('an empty dir, or only Seine files, has no primary', () => {
    expect(choosePrimary([], SOCKET)).toEqual({ problem: 'no network configuration file of the cloud CNI', files: [] });
    expect(choosePrimary([chainedFile(), { name: 'README' }], SOCKET).problem).toBe('no network configuration file of the cloud CNI');
  });

  it('chainedAfter reads only a valid list that ends with Seine', () => {
    expect(chainedAfter(json(AWS_CONFLIST))).toBeUndefined();
    expect(chainedAfter(json(seineConfList(SOCKET, true)))).toBeUndefined();
    expect(chainedAfter(json(seineConfList(SOCKET, false)))).toBeUndefined();
    expect(chainedAfter('{"cniVersion":')).toBeUndefined();
  });
});
