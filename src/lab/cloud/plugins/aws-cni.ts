// The lab's aws-cni stand-in as a CNI plugin executable (the lab installs a wrapper that runs this file).
import { pluginMain } from '../../../cni/skel.js';
import { awsCniPlugin } from '../aws-vpc-cni.js';

await pluginMain(awsCniPlugin);
