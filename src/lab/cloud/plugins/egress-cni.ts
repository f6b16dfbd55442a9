// The lab's egress-cni stand-in as a CNI plugin executable (the lab installs a wrapper that runs this file).
import { pluginMain } from '../../../cni/skel.js';
import { egressCniPlugin } from '../aws-vpc-cni.js';

await pluginMain(egressCniPlugin);
