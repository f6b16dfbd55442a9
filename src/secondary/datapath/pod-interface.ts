import ipaddr from 'ipaddr.js';
import type { CniRoute } from '../../cni/types.js';
import { CommandError } from '../../host/exec.js';
import { IpBatch, IpRoute, isolateFromHostStackCommand, STEP_EXIT_BASE, txOffloadOffCommand, type Route } from '../../host/ip.js';

export interface SecondaryInterfaceSpec {
  netns: string;
  ifname: string;
  hostIfname: string;
  mac: string;
  mtu: number;
  addresses: readonly string[];
  routes: readonly CniRoute[];
  /** TX offload off on both ends and the host end kept from the kernel's IP stack (userspace datapath). */
  userspaceDatapath: boolean;
  /**
   * False: the pod end gets no IPv6 link-local address, so its kernel sends nothing by itself (no DAD,
   * router solicitation or MLD): a function port carries steered traffic only. Default true.
   */
  ipv6LinkLocal?: boolean;
  /**
   * False: the host end is left down (nothing passes) for the caller to bring up once the switch is ready
   * for the port (a function port on a trunk bridge: no-flood and its drop flow first). Default true.
   */
  hostUp?: boolean;
}

/** A route for the main table's default of its family: the one `default-route` replaces. */
export function isDefaultRoute(r: CniRoute): boolean {
  return (r.dst === '0.0.0.0/0' || r.dst === '::/0') && (r.table === undefined || r.table === 254);
}

function family(dst: string): 4 | 6 {
  return dst.includes(':') ? 6 : 4;
}

/** One `ip route` argument list for a CNI route via the pod interface. */
export function routeArgs(r: CniRoute, dev: string): string[] {
  const parts = [r.dst];
  if (r.gw) parts.push('via', r.gw);
  parts.push('dev', dev);
  if (r.priority !== undefined) parts.push('metric', String(r.priority));
  if (r.table !== undefined) parts.push('table', String(r.table));
  if (r.scope !== undefined) parts.push('scope', String(r.scope));
  if (r.mtu !== undefined) parts.push('mtu', String(r.mtu));
  if (r.advmss !== undefined) parts.push('advmss', String(r.advmss));
  return parts;
}

/** The arguments that name an installed default route exactly (for deleting it and putting it back). */
function installedDefaultArgs(r: Route, fam: 4 | 6): string[] {
  const parts = [fam === 4 ? '0.0.0.0/0' : '::/0'];
  if (r.gateway) parts.push('via', r.gateway);
  if (r.dev) parts.push('dev', r.dev);
  if (r.metric !== undefined) parts.push('metric', String(r.metric));
  if (r.protocol) parts.push('proto', r.protocol);
  if (r.flags?.includes('onlink')) parts.push('onlink');
  return parts;
}

/** Checks what would otherwise fail half way (names, MAC, MTU, addresses, routes); throws before anything is made. */
export function validateInterfaceSpec(spec: Omit<SecondaryInterfaceSpec, 'userspaceDatapath'>): void {
  const bad = (what: string): never => {
    throw new RangeError(`attachment ${spec.hostIfname}: ${what}`);
  };
  for (const [what, name] of [['hostIfname', spec.hostIfname], ['ifname', spec.ifname]] as const) {
    if (!name || Buffer.byteLength(name) > 15 || /[/:\s]/.test(name) || name === '.' || name === '..') bad(`invalid ${what} "${name}"`);
  }
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(spec.mac) || (parseInt(spec.mac.slice(0, 2), 16) & 1) === 1) bad(`invalid unicast MAC ${spec.mac}`);
  if (!Number.isInteger(spec.mtu) || spec.mtu < 68 || spec.mtu > 65535) bad(`invalid MTU ${spec.mtu}`);
  for (const a of spec.addresses) if (!ipaddr.isValidCIDR(a)) bad(`invalid address ${a} (expected a CIDR)`);
  for (const r of spec.routes) {
    if (!ipaddr.isValidCIDR(r.dst)) bad(`invalid route destination ${r.dst}`);
    if (r.gw !== undefined && (!ipaddr.isValid(r.gw) || family(r.gw) !== family(r.dst))) bad(`invalid gateway ${r.gw} for ${r.dst}`);
  }
  for (const fam of [4, 6] as const) {
    if (spec.routes.filter((r) => isDefaultRoute(r) && family(r.dst) === fam).length > 1) bad(`more than one IPv${fam} default route`);
  }
}

/**
 * Creates the pod's secondary veth (peer straight into the pod netns with its name, MAC and MTU), addresses
 * it, adds its routes, and, for a default route, replaces the pod's default route of that family (the
 * routes removed for it are remembered). Returns the undo: delete the veth, put those routes back.
 * On failure it undoes itself and throws; a host interface that existed before is never touched.
 */
export async function setUpSecondaryInterface(host: IpRoute, spec: SecondaryInterfaceSpec): Promise<() => Promise<void>> {
  const pod = new IpRoute(spec.netns);
  const replaced: Array<{ fam: 4 | 6; args: string[] }> = [];
  const undo = async (): Promise<void> => {
    await host.applyBestEffort(new IpBatch().delLink(spec.hostIfname));
    // Routes via the removed interface went with it; the replaced ones come back (when the failure came
    // before their deletion, re-adding them fails with "exists", which is ignored).
    if (replaced.length) await pod.applyBestEffort(replaced.reduce((b, r) => b.command('route', 'append', ...r.args), new IpBatch()));
  };
  const veth = new IpBatch().addVeth(spec.hostIfname, spec.ifname, { peerNetns: spec.netns, mtu: spec.mtu, peerMac: spec.mac });
  const b = new IpBatch().setLink('lo', { up: true });
  for (const a of spec.addresses) b.command('addr', 'replace', a, 'dev', spec.ifname, ...(family(a) === 6 ? ['nodad'] : []));
  // Before the link goes up: the kernel generates the link-local address when it does.
  if (spec.ipv6LinkLocal === false) b.command('link', 'set', 'dev', spec.ifname, 'addrgenmode', 'none');
  b.setLink(spec.ifname, { up: true });
  const defaults = spec.routes.filter(isDefaultRoute);
  for (const r of spec.routes.filter((x) => !isDefaultRoute(x))) b.command('route', 'replace', ...routeArgs(r, spec.ifname));
  // Every default route of the family goes (the primary network may have appended several), then ours.
  for (const r of defaults) {
    const fam = family(r.dst);
    for (const old of (await pod.routes({ family: fam })).filter((x) => x.dst === 'default')) {
      const args = installedDefaultArgs(old, fam);
      replaced.push({ fam, args });
      b.command('route', 'del', ...args);
    }
    b.command('route', 'replace', ...routeArgs(r, spec.ifname));
  }
  // The host end goes up last: no frame reaches the switch before the pod end is configured.
  const hostSide = spec.hostUp === false ? new IpBatch() : new IpBatch().setLink(spec.hostIfname, { up: true });
  const userspace = spec.userspaceDatapath;
  try {
    // One process for the three steps: the veth, the pod end, the host end.
    await host.applySteps([
      { batch: veth },
      { netns: spec.netns, batch: b, followUps: userspace ? [txOffloadOffCommand(spec.ifname)] : [] },
      { batch: hostSide, followUps: userspace ? [txOffloadOffCommand(spec.hostIfname), isolateFromHostStackCommand(spec.hostIfname)] : [] },
    ]);
  } catch (e) {
    const step = e instanceof CommandError ? (e.exitCode ?? 0) - STEP_EXIT_BASE : -1;
    // The veth step failed (e.g. the name exists): nothing was made, and a host interface that was there is not ours.
    if (step === 0) throw e;
    await undo();
    if (step === 1 && e instanceof CommandError) throw new Error(`configuring ${spec.ifname} in ${spec.netns}: ${e.stderr.trim() || e.message}`, { cause: e });
    throw e;
  }
  return undo;
}

/** Removes the host end of a pod veth (the pod end goes with it). Only a veth: anything else by that name is not ours. */
export async function tearDownSecondaryInterface(host: IpRoute, hostIfname: string): Promise<void> {
  await host.delVeth(hostIfname);
}
