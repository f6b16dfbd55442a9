// authentication.k8s.io/v1 TokenReview, as kube-apiserver answers it: a create-only, cluster-scoped resource that
// is never stored. The reviewed token's user (or, for a token the server does not know, authenticated: false and
// an error) comes back in status; a request without a token is a bad request.
import { errors } from './errors.js';
import { isObject, type JsonObject } from './types.js';

export const TOKEN_REVIEW_GROUP = 'authentication.k8s.io';
export const TOKEN_REVIEW_VERSION = 'v1';
export const TOKEN_REVIEW_RESOURCE = 'tokenreviews';

/** The user the lab's token authenticates as (a cluster admin, as kubeadm's admin.conf user is). */
export const LAB_ADMIN_USER = 'seine-lab-admin';
export const LAB_ADMIN_GROUPS = ['system:masters', 'system:authenticated'];
/** The API server's own audience: tokens without an audience of their own are good for it. */
export const LAB_API_AUDIENCES = ['https://kubernetes.default.svc.cluster.local'];

export interface UserInfo {
  username: string;
  groups: string[];
  uid?: string;
  /** Who the token is for (default: the API server, LAB_API_AUDIENCES). */
  audiences?: string[];
}

/** The discovery entry (only `create`: a review is not an object one can get or list). */
export const tokenReviewDiscovery: JsonObject = { name: TOKEN_REVIEW_RESOURCE, singularName: 'tokenreview', namespaced: false, kind: 'TokenReview', verbs: ['create'] };

/** The TokenReview the server returns for a request body, given who each token it knows is. */
export function reviewToken(body: unknown, userOf: (token: string) => UserInfo | undefined): JsonObject {
  if (!isObject(body)) throw errors.badRequest('the request body must be a TokenReview');
  if (body.kind !== undefined && body.kind !== 'TokenReview') throw errors.badRequest(`the body is a ${String(body.kind)}, not a TokenReview`);
  if (body.apiVersion !== undefined && body.apiVersion !== `${TOKEN_REVIEW_GROUP}/${TOKEN_REVIEW_VERSION}`) {
    throw errors.badRequest(`the body is ${String(body.apiVersion)}, not ${TOKEN_REVIEW_GROUP}/${TOKEN_REVIEW_VERSION}`);
  }
  const spec = isObject(body.spec) ? body.spec : {};
  const token = typeof spec.token === 'string' ? spec.token : '';
  if (!token) throw errors.badRequest('token is required for TokenReview');
  const wanted = Array.isArray(spec.audiences) ? spec.audiences.filter((a): a is string => typeof a === 'string') : [];
  const metadata = isObject(body.metadata) ? body.metadata : {};
  const out = (status: JsonObject): JsonObject => ({ kind: 'TokenReview', apiVersion: `${TOKEN_REVIEW_GROUP}/${TOKEN_REVIEW_VERSION}`, metadata: { ...metadata, creationTimestamp: null }, spec, status });
  const user = userOf(token);
  if (!user) return out({ user: {}, error: '[invalid bearer token, token lookup failed]' });
  // A token is good for a review that asks for one of its audiences (none asked: the API server's).
  const has = user.audiences ?? LAB_API_AUDIENCES;
  const audiences = (wanted.length ? wanted : LAB_API_AUDIENCES).filter((a) => has.includes(a));
  if (!audiences.length) return out({ user: {}, error: `[invalid bearer token, token audiences ${JSON.stringify(has)} is invalid for the target audiences ${JSON.stringify(wanted.length ? wanted : LAB_API_AUDIENCES)}]` });
  return out({ authenticated: true, user: { username: user.username, ...(user.uid ? { uid: user.uid } : {}), groups: user.groups }, audiences });
}
