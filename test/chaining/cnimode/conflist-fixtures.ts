// The cloud CNIs' network configs as their agents install them (values filled in as on a node).
import { awsConflist, azureConflist } from '../../../src/lab/cloud/profile.js';

/** AWS VPC CNI's 10-aws.conflist, as aws-node writes it on a node (the lab's stand-in renders the same). */
export const AWS_CONFLIST = awsConflist(9001, { root: '/', logDir: '/var/log' });

/** Azure CNI's 10-azure.conflist in transparent mode. */
export const AZURE_CONFLIST = azureConflist('transparent');

/** The reference loopback plugin, as images often leave it beside the cloud's list. */
export const LOOPBACK_CONF = { cniVersion: '0.3.1', name: 'lo', type: 'loopback' };

export const SOCKET = '/var/run/seine/cni.sock';

export const json = (o: unknown): string => `${JSON.stringify(o, null, 2)}\n`;
