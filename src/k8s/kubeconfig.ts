import { KubeConfig } from '@kubernetes/client-node';

/**
 * Loads a kubeconfig: an explicit path, else $KUBECONFIG, else in-cluster service account when running in a pod,
 * else ~/.kube/config.
 */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else if (process.env.KUBECONFIG) kc.loadFromFile(process.env.KUBECONFIG);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}
