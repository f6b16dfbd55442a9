// kubectl (client-go) only sends bearer tokens over TLS, so the lab API server also speaks HTTPS; its serving
// certificate is self-signed and is, in the kubeconfig, its own CA.
import { selfSignedCert as makeCert, type ServingCert } from '../../util/certs.js';

export type { ServingCert };

/** A fresh 10-year certificate for 127.0.0.1 and localhost. */
export function selfSignedCert(commonName = 'seine-lab-apiserver'): ServingCert {
  return makeCert({ commonName, ips: ['127.0.0.1'], dnsNames: ['localhost'], days: 10 * 365 });
}
