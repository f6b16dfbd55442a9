// The cloud CNIs' network configs as their agents install them (values filled in as on a node).

/** AWS VPC CNI's 10-aws.conflist, as aws-node writes it. */
export const AWS_CONFLIST = {
  cniVersion: '0.4.0',
  name: 'aws-cni',
  disableCheck: true,
  plugins: [
    {
      name: 'aws-cni',
      type: 'aws-cni',
      vethPrefix: 'eni',
      mtu: '9001',
      podSGEnforcingMode: 'strict',
      pluginLogFile: '/var/log/aws-routed-eni/plugin.log',
      pluginLogLevel: 'DEBUG',
      capabilities: { 'io.kubernetes.cri.pod-annotations': true },
    },
    {
      name: 'egress-cni',
      type: 'egress-cni',
      mtu: '9001',
      enabled: 'false',
      randomizeSNAT: 'prng',
      nodeIP: '',
      ipam: { type: 'host-local', ranges: [[{ subnet: 'fd00::ac:00/118' }]], routes: [{ dst: '::/0' }], dataDir: '/run/cni/v4pd/egress-v6-ipam' },
      pluginLogFile: '/var/log/aws-routed-eni/egress-v6-plugin.log',
      pluginLogLevel: 'DEBUG',
    },
    { type: 'portmap', capabilities: { portMappings: true }, snat: true },
  ],
};

/** Azure CNI's 10-azure.conflist in transparent mode. */
export const AZURE_CONFLIST = {
  cniVersion: '0.3.0',
  name: 'azure',
  plugins: [
    { type: 'azure-vnet', mode: 'transparent', ipsToRouteViaHost: ['169.254.20.10'], ipam: { type: 'azure-vnet-ipam' } },
    { type: 'portmap', capabilities: { portMappings: true }, snat: true },
  ],
};

/** The reference loopback plugin, as images often leave it beside the cloud's list. */
export const LOOPBACK_CONF = { cniVersion: '0.3.1', name: 'lo', type: 'loopback' };

export const SOCKET = '/var/run/seine/cni.sock';

export const json = (o: unknown): string => `${JSON.stringify(o, null, 2)}\n`;
