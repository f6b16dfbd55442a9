// ServiceAccount tokens, as kube-apiserver issues them (TokenRequest: POST .../serviceaccounts/NAME/token, what
// `kubectl create token` sends): a signed JWT naming the ServiceAccount, bound to its uid (deleting the
// ServiceAccount revokes it), with audiences and an expiry. Such a token authenticates as
// `system:serviceaccount:NS:NAME` in the groups system:serviceaccounts, system:serviceaccounts:NS and
// system:authenticated. Tokens are HMAC-signed with a key derived from the server's own credentials, so a restarted
// server (same data file) still accepts them.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { errors } from './errors.js';
import { LAB_API_AUDIENCES, type UserInfo } from './tokenreview.js';
import { isObject, type JsonObject, type KubeObject } from './types.js';

/** kube's bounds on expirationSeconds: at least 10 minutes; 1 hour when not asked. */
const MIN_EXPIRATION_S = 600;
const DEFAULT_EXPIRATION_S = 3600;
const MAX_EXPIRATION_S = 48 * 3600;
const ISSUER = 'https://kubernetes.default.svc.cluster.local';

interface Claims {
  iss: string;
  sub: string;
  aud: string[];
  exp: number;
  iat: number;
  'kubernetes.io': { namespace: string; serviceaccount: { name: string; uid: string } };
}

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

export class ServiceAccountTokens {
  private readonly key: Buffer;

  constructor(
    serverSecret: string,
    /** The ServiceAccount as stored now (undefined: gone). */
    private readonly serviceAccount: (namespace: string, name: string) => KubeObject | undefined,
    private readonly now: () => number = Date.now,
  ) {
    this.key = createHash('sha256').update(`seine-lab serviceaccount tokens\0${serverSecret}`).digest();
  }

  /** The TokenRequest the server returns (201) for a body, for an existing ServiceAccount. */
  issue(namespace: string, name: string, body: unknown): JsonObject {
    const sa = this.serviceAccount(namespace, name);
    if (!sa) throw errors.notFound({ group: '', resource: 'serviceaccounts' }, name);
    const b = isObject(body) ? body : {};
    const spec = isObject(b.spec) ? b.spec : {};
    const audiences = Array.isArray(spec.audiences) && spec.audiences.length ? spec.audiences.filter((a): a is string => typeof a === 'string') : LAB_API_AUDIENCES;
    const asked = typeof spec.expirationSeconds === 'number' ? spec.expirationSeconds : DEFAULT_EXPIRATION_S;
    if (asked < MIN_EXPIRATION_S) {
      throw errors.invalid('authentication.k8s.io', 'TokenRequest', name, [{ reason: 'FieldValueInvalid', field: 'spec.expirationSeconds', message: `Invalid value: ${asked}: may not specify a duration less than 10 minutes` }]);
    }
    const seconds = Math.min(asked, MAX_EXPIRATION_S);
    const iat = Math.floor(this.now() / 1000);
    const claims: Claims = { iss: ISSUER, sub: `system:serviceaccount:${namespace}:${name}`, aud: audiences, exp: iat + seconds, iat, 'kubernetes.io': { namespace, serviceaccount: { name, uid: sa.metadata.uid! } } };
    const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
    return {
      kind: 'TokenRequest',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { name, namespace, creationTimestamp: new Date(iat * 1000).toISOString() },
      spec: { audiences, expirationSeconds: seconds, boundObjectRef: null },
      status: { token: `${unsigned}.${this.sign(unsigned)}`, expirationTimestamp: new Date((iat + seconds) * 1000).toISOString().replace(/\.\d+Z$/, 'Z') },
    };
  }

  /** Who a token is, if it is one of ours, unexpired, for a ServiceAccount that still exists (the same one). */
  userOf(token: string): UserInfo | undefined {
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    const want = Buffer.from(this.sign(`${parts[0]}.${parts[1]}`));
    const got = Buffer.from(parts[2]!);
    if (got.length !== want.length || !timingSafeEqual(got, want)) return undefined;
    let claims: Claims;
    try {
      claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as Claims;
    } catch {
      return undefined;
    }
    if (claims.exp * 1000 <= this.now()) return undefined;
    const { namespace, serviceaccount } = claims['kubernetes.io'];
    if (this.serviceAccount(namespace, serviceaccount.name)?.metadata.uid !== serviceaccount.uid) return undefined;
    return {
      username: claims.sub,
      uid: serviceaccount.uid,
      groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
      audiences: claims.aud,
    };
  }

  private sign(unsigned: string): string {
    return createHmac('sha256', this.key).update(unsigned).digest('base64url');
  }
}
