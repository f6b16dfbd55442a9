export const NETWORKS_ANNOTATION = 'k8s.v1.cni.cncf.io/networks';
export const NETWORK_STATUS_ANNOTATION = 'k8s.v1.cni.cncf.io/network-status';

/** One thing wrong with the annotation: which element (0-based, when it is about one) and what. */
export interface AnnotationProblem {
  index?: number;
  /** What the element names (e.g. "ns/macvlan"), to find it in a long annotation. */
  element?: string;
  /** Readable problem, field first: `mac: "zz" is not a unicast MAC address ...`. */
  message: string;
}

/**
 * The networks annotation is invalid. Per the spec one invalid element makes the whole annotation
 * invalid, so every problem found is listed; `message` is fit for a Kubernetes Event.
 */
export class NetworksAnnotationError extends Error {
  constructor(readonly problems: readonly AnnotationProblem[]) {
    super(`invalid ${NETWORKS_ANNOTATION} annotation: ${problems.map(describe).join('; ')}`);
    this.name = 'NetworksAnnotationError';
  }
}

function describe(p: AnnotationProblem): string {
  if (p.index === undefined) return p.message;
  return `element ${p.index + 1}${p.element ? ` (${p.element})` : ''}: ${p.message}`;
}

/** The network-status annotation cannot be read back. */
export class NetworkStatusError extends Error {
  constructor(detail: string) {
    super(`invalid ${NETWORK_STATUS_ANNOTATION} annotation: ${detail}`);
    this.name = 'NetworkStatusError';
  }
}
