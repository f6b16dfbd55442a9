import {
  HostServicesStateError,
  NFT_SERVICES_TABLE,
  NFT_SETS,
  NODEPORT_VIRTUAL_IP,
  normalizeHostServicesState,
  servicesRuleset,
  servicesRulesetRemoval,
  type HostServicesState,
} from '../../src/services/host/index.js';

const base: HostServicesState = {
  gatewayIf: 'seine-gw0',
  gatewayIp: '10.10.0.1',
  gatewayMac: '0a:00:00:00:00:01',
  serviceCidr: '10.96.0.0/16',
  externalAddresses: [],
  rejects: [],
  nodePorts: [],
  masqueradeExternal: [],
};

const state = (over: Partial<HostServicesState> = {}): HostServicesState => normalizeHostServicesState({ ...base, ...over });

/** The element lines of one set in a rendered script. */
function elements(script: string, set: string): string[] {
  const m = new RegExp(`set ${set} \\{\\n\\s+type [^\\n]+\\n(?:\\s+elements = \\{\\n([^}]*)\\s+\\}\\n)?\\s+\\}`).exec(script);
  if (!m) throw new Error(`set ${set} not in the script`);
  return (m[1] ?? '')
    .split('\n')
    .map((l) => l.trim().replace(/,$/, ''))
    .filter(Boolean);
}

/** Rule lines (inside chains, not hook declarations). */
function rules(script: string): string[] {
  const out: string[] = [];
  let inChain = false;
  for (const line of script.split('\n')) {
    if (/^\s+chain /.test(line)) inChain = true;
    else if (/^\s+\}$/.test(line)) inChain = false;
    else if (inChain && !/^\s+type /.test(line)) out.push(line.trim());
  }
  return out;
}

describe('nft ruleset of the node side of Services', () => {
  it('replaces the whole table in one script: declare, delete, recreate', () => {
    const script = servicesRuleset(state());
    const lines = script.split('\n');
    expect(lines.slice(0, 3)).toEqual([`table ip ${NFT_SERVICES_TABLE} {}`, `delete table ip ${NFT_SERVICES_TABLE}`, `table ip ${NFT_SERVICES_TABLE} {`]);
    expect(script.endsWith('}\n')).toBe(true);
    expect(servicesRulesetRemoval()).toBe(`table ip ${NFT_SERVICES_TABLE} {}\ndelete table ip ${NFT_SERVICES_TABLE}\n`);
  });

  it('puts every Service in sets: the rules stay the same however many Services there are', () => {
    const few = state({ nodePorts: [{ protocol: 'TCP', port: 30000, masquerade: true, reject: false }] });
    const many = state({
      nodePorts: Array.from({ length: 2000 }, (_, i) => ({ protocol: i % 2 ? ('UDP' as const) : ('TCP' as const), port: 30000 + i, masquerade: i % 3 === 0, reject: i % 5 === 0 })),
      rejects: Array.from({ length: 1000 }, (_, i) => ({ ip: `10.96.${i >> 8}.${i & 255}`, protocol: 'TCP' as const, port: 80 })),
      externalAddresses: Array.from({ length: 1000 }, (_, i) => `198.51.${100 + (i >> 8)}.${i & 255}`),
      masqueradeExternal: Array.from({ length: 1000 }, (_, i) => ({ ip: `198.51.${100 + (i >> 8)}.${i & 255}`, protocol: 'TCP' as const, port: 443 })),
    });
    expect(rules(servicesRuleset(many))).toEqual(rules(servicesRuleset(few)));
    expect(elements(servicesRuleset(many), NFT_SETS.nodePorts)).toHaveLength(1600);
    expect(elements(servicesRuleset(many), NFT_SETS.nodePortRejects)).toHaveLength(400);
    expect(elements(servicesRuleset(many), NFT_SETS.serviceRejects)).toHaveLength(1000);
  });

  it('sorts node ports into DNAT, reject and masquerade sets by their flags', () => {
    const script = servicesRuleset(
      state({
        nodePorts: [
          { protocol: 'TCP', port: 30080, masquerade: true, reject: false },
          { protocol: 'UDP', port: 30081, masquerade: false, reject: false },
          { protocol: 'SCTP', port: 30082, masquerade: true, reject: true },
          { protocol: 'TCP', port: 30083, masquerade: false, reject: true },
        ],
      }),
    );
    expect(elements(script, NFT_SETS.nodePorts)).toEqual(['tcp . 30080', 'udp . 30081']);
    expect(elements(script, NFT_SETS.nodePortRejects)).toEqual(['sctp . 30082', 'tcp . 30083']);
    // A rejected port is never translated, so it is never masqueraded either.
    expect(elements(script, NFT_SETS.nodePortsMasqueraded)).toEqual(['tcp . 30080']);
  });

  it('writes address . protocol . port elements once each, in a stable order', () => {
    const a = state({
      rejects: [
        { ip: '10.96.0.11', protocol: 'UDP', port: 53 },
        { ip: '10.96.0.11', protocol: 'TCP', port: 80 },
        { ip: '10.96.0.11', protocol: 'UDP', port: 53 },
      ],
      masqueradeExternal: [{ ip: '198.51.100.7', protocol: 'SCTP', port: 9 }],
    });
    const b = state({ rejects: [...a.rejects].reverse(), masqueradeExternal: a.masqueradeExternal });
    expect(elements(servicesRuleset(a), NFT_SETS.serviceRejects)).toEqual(['10.96.0.11 . tcp . 80', '10.96.0.11 . udp . 53']);
    expect(elements(servicesRuleset(a), NFT_SETS.externalMasqueraded)).toEqual(['198.51.100.7 . sctp . 9']);
    expect(servicesRuleset(b)).toBe(servicesRuleset(a));
  });

  it('leaves an empty set without an elements block (nft refuses `elements = { }`)', () => {
    const script = servicesRuleset(state());
    for (const set of Object.values(NFT_SETS)) expect(elements(script, set)).toEqual([]);
    expect(script).not.toMatch(/elements = \{\s*\}/);
  });

  it('translates node ports on local, non-loopback addresses and masquerades only what goes into OVS', () => {
    const script = servicesRuleset(state({ gatewayIf: 'gw-x', gatewayIp: '10.20.0.1' }));
    expect(script).toContain(`fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport @${NFT_SETS.nodePorts} dnat to ${NODEPORT_VIRTUAL_IP}`);
    expect(script).toMatch(/chain prerouting \{\n\s+type nat hook prerouting priority dstnat; policy accept;\n\s+jump nodeport-dnat\n/);
    expect(script).toMatch(/chain output-nat \{\n\s+type nat hook output priority -100; policy accept;\n\s+jump nodeport-dnat\n/);
    expect(script).toContain('oifname != "gw-x" return');
    const snats = rules(script).filter((r) => r.includes('snat'));
    expect(snats).toHaveLength(4);
    for (const r of snats) expect(r).toMatch(/ snat to 10\.20\.0\.1$/);
    expect(snats.filter((r) => r.startsWith(`ip daddr ${NODEPORT_VIRTUAL_IP} `))).toEqual([
      `ip daddr ${NODEPORT_VIRTUAL_IP} meta l4proto . th dport @${NFT_SETS.nodePortsMasqueraded} snat to 10.20.0.1`,
      `ip daddr ${NODEPORT_VIRTUAL_IP} iifname "gw-x" snat to 10.20.0.1`,
      `ip daddr ${NODEPORT_VIRTUAL_IP} fib saddr type local snat to 10.20.0.1`,
    ]);
  });

  it('rejects new connections to unserved Services on input, forward and output: TCP with a reset, the rest with port unreachable', () => {
    const script = servicesRuleset(state());
    for (const hook of ['input', 'forward', 'output']) {
      expect(script).toMatch(new RegExp(`chain ${hook} \\{\\n\\s+type filter hook ${hook} priority filter; policy accept;\\n\\s+ct state new jump endpoints-check\\n`));
    }
    expect(script).toMatch(/chain reject-unserved \{\n\s+meta l4proto tcp reject with tcp reset\n\s+reject with icmp type port-unreachable\n/);
    expect(script).toContain(`ip daddr . meta l4proto . th dport @${NFT_SETS.serviceRejects} goto reject-unserved`);
    expect(script).toContain(`fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport @${NFT_SETS.nodePortRejects} goto reject-unserved`);
  });
});

describe('host Services state checks', () => {
  const bad = (over: Record<string, unknown>, field: RegExp): void => {
    let err: unknown;
    try {
      normalizeHostServicesState({ ...base, ...over } as HostServicesState);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HostServicesStateError);
    expect((err as HostServicesStateError).field).toMatch(field);
  };

  it('refuses anything that is not a plain address, port, protocol, MAC or interface name', () => {
    bad({ gatewayIf: 'seine gw0' }, /^gatewayIf$/);
    bad({ gatewayIf: 'a-name-longer-than-15' }, /^gatewayIf$/);
    bad({ gatewayIp: '10.10.0.1; flush ruleset' }, /^gatewayIp$/);
    bad({ gatewayIp: '010.10.0.1' }, /^gatewayIp$/);
    bad({ gatewayMac: '0a:00:00:00:00' }, /^gatewayMac$/);
    bad({ serviceCidr: '10.96.0.1/16' }, /^serviceCidr$/);
    bad({ serviceCidr: 'fd00::/64' }, /^serviceCidr$/);
    bad({ externalAddresses: ['198.51.100.7', '198.51.100.7/32'] }, /^externalAddresses\[1\]$/);
    bad({ rejects: [{ ip: '10.96.0.1', protocol: 'ICMP', port: 1 }] }, /^rejects\[0\]\.protocol$/);
    bad({ rejects: [{ ip: '10.96.0.1', protocol: 'TCP', port: 0 }] }, /^rejects\[0\]\.port$/);
    bad({ masqueradeExternal: [{ ip: '10.96.0.1', protocol: 'tcp', port: 80 }] }, /^masqueradeExternal\[0\]\.protocol$/);
    bad({ nodePorts: [{ protocol: 'TCP', port: 65536, masquerade: true, reject: false }] }, /^nodePorts\[0\]\.port$/);
    bad({ nodePorts: [{ protocol: 'TCP', port: 30080.5, masquerade: true, reject: false }] }, /^nodePorts\[0\]\.port$/);
    bad({ nodePorts: [{ protocol: 'TCP', port: 30080, masquerade: 'yes', reject: false }] }, /^nodePorts\[0\]\.masquerade$/);
    bad({ nodePorts: null }, /^nodePorts$/);
  });

  it('refuses a node port listed twice with different flags, and keeps one of identical ones', () => {
    const np = { protocol: 'TCP' as const, port: 30080, masquerade: true, reject: false };
    bad({ nodePorts: [np, { ...np, reject: true }] }, /^nodePorts\[1\]$/);
    expect(state({ nodePorts: [np, { ...np }] }).nodePorts).toEqual([np]);
    // The same port number of another protocol is another node port.
    expect(state({ nodePorts: [np, { ...np, protocol: 'UDP', reject: true }] }).nodePorts).toHaveLength(2);
  });

  it('writes MACs in lower case and drops duplicate addresses', () => {
    const s = state({ gatewayMac: '0A:00:00:00:00:FF', externalAddresses: ['198.51.100.7', '198.51.100.7', '198.51.100.8'] });
    expect(s.gatewayMac).toBe('0a:00:00:00:00:ff');
    expect(s.externalAddresses).toEqual(['198.51.100.7', '198.51.100.8']);
  });
});
