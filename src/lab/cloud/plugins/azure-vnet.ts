// The lab's azure-vnet stand-in as a CNI plugin executable (the lab installs a wrapper that runs this file).
import { pluginMain } from '../../../cni/skel.js';
import { azureVnetPlugin } from '../azure-cni.js';

await pluginMain(azureVnetPlugin);
