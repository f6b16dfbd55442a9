// The kubeconfig of a CLI command run by a user, found as kubectl finds it.
import { KubeConfig } from '@kubernetes/client-node';

/** --kubeconfig, else $KUBECONFIG (a list of files), else ~/.kube/config (else in-cluster); `fail` makes the command's error. */
export function loadUserKubeConfig(path: string | undefined, context: string | undefined, fail: (message: string) => Error): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (path) kc.loadFromFile(path);
    else kc.loadFromDefault();
  } catch (e) {
    throw fail(`cannot load the kubeconfig: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (context) {
    if (!kc.getContextObject(context)) throw fail(`context was not found for specified context: ${context}`);
    kc.setCurrentContext(context);
  }
  if (!kc.getCurrentCluster()) throw fail('no cluster in the kubeconfig (use --kubeconfig, or set $KUBECONFIG)');
  return kc;
}
