// The lab's azure-vnet-ipam stand-in as a CNI plugin executable (the lab installs a wrapper that runs this file).
import { pluginMain } from '../../../cni/skel.js';
import { azureVnetIpamPlugin } from '../azure-cni.js';

await pluginMain(azureVnetIpamPlugin);
