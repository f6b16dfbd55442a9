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

/** Problems spelled out in the message; the rest are counted (an annotation may have thousands of elements). */
const PROBLEMS_SHOWN = 5;
/** A problem's text in the message: an element can be arbitrarily long, an Event message cannot. */
const PROBLEM_CHARS = 160;

/**
 * The networks annotation is invalid. Per the spec one invalid element makes the whole annotation invalid;
 * `problems` holds every problem found, `message` (fit for a Kubernetes Event and a CNI error) the first few
 * and how many more there are.
 */
export class NetworksAnnotationError extends Error {
  constructor(readonly problems: readonly AnnotationProblem[]) {
    super(`invalid ${NETWORKS_ANNOTATION} annotation: ${summarize(problems)}`);
    this.name = 'NetworksAnnotationError';
  }
}

function summarize(problems: readonly AnnotationProblem[]): string {
  const shown = problems.slice(0, PROBLEMS_SHOWN).map((p) => clip(describe(p)));
  if (problems.length <= PROBLEMS_SHOWN) return shown.join('; ');
  return `${problems.length} problems: ${shown.join('; ')}; and ${problems.length - PROBLEMS_SHOWN} more`;
}

function describe(p: AnnotationProblem): string {
  if (p.index === undefined) return p.message;
  return `element ${p.index + 1}${p.element ? ` (${p.element})` : ''}: ${p.message}`;
}

function clip(text: string): string {
  const chars = [...text];
  return chars.length <= PROBLEM_CHARS ? text : `${chars.slice(0, PROBLEM_CHARS - 3).join('')}...`;
}

/** The network-status annotation cannot be read back. */
export class NetworkStatusError extends Error {
  constructor(detail: string) {
    super(`invalid ${NETWORK_STATUS_ANNOTATION} annotation: ${detail}`);
    this.name = 'NetworkStatusError';
  }
}
