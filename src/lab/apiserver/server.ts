import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { logger, type Logger } from '../../util/log.js';
import { ResourceClient } from './client.js';
import { apiGroup, apiGroupList, apiResourceList, apiVersions, openApiV2, openApiV3Doc, openApiV3Root, versionInfo } from './discovery.js';
import { ApiError, errors, successStatus } from './errors.js';
import { nodeProxyRequest, proxyToNode, type NodeProxyTarget } from './node-proxy.js';
import { hasSubresource, type ResourceType } from './registry.js';
import { parseCidr4, reconcileKubernetesService, type ApiServerEndpoint } from './service.js';
import { DEFAULT_SERVICE_CIDR, Store, type StoreSnapshot } from './store.js';
import { toTable, type IncludeObject } from './table.js';
import { cachedOpenApiV2, OPENAPI_V2_PROTOBUF, openApiV2Format } from './openapi-v2.js';
import { decodeKubeProtobuf } from './protobuf.js';
import { selfSignedCert, type ServingCert } from './tls.js';
import { LAB_ADMIN_GROUPS, LAB_ADMIN_USER, LAB_API_AUDIENCES, reviewToken, TOKEN_REVIEW_GROUP, TOKEN_REVIEW_RESOURCE, TOKEN_REVIEW_VERSION, type UserInfo } from './tokenreview.js';
import { accessReviewRoute, reviewAccess } from './accessreview.js';
import { PRIVILEGED_GROUP, RbacAuthorizer, storeRbacObjects, type ResourceAttributes } from './rbac.js';
import { DEFAULT_CLUSTER_ROLE_BINDINGS, DEFAULT_CLUSTER_ROLES, forbidden, requestAttributes } from './request-authz.js';
import { ServiceAccountTokens } from './tokenrequest.js';
import { isObject, PATCH_CONTENT_TYPES, type DeleteOptions, type JsonObject, type KubeObject, type PropagationPolicy, type WatchEvent, type WriteOptions } from './types.js';

export interface ApiServerOptions {
  /** TCP port on 127.0.0.1; 0 (the default) picks a free one. */
  port?: number;
  /** Bearer token clients must present; random when not given. */
  token?: string;
  /** Snapshot file: loaded at start, rewritten (debounced, atomically) after changes. */
  dataFile?: string;
  /** Watch events retained for resumption; resourceVersions older than the window get 410 Gone. */
  historySize?: number;
  /** Interval of watch bookmarks (default 60 s). */
  bookmarkIntervalMs?: number;
  /** Delay before a change is written to dataFile (default 100 ms). */
  persistDebounceMs?: number;
  /** IPv4 range ClusterIPs come from (default 10.96.0.0/12). */
  serviceCIDR?: string;
  /** Also serve on this Unix socket (a relay in another network namespace reaches the server through it). */
  unixSocket?: string;
  /** Where in-cluster clients reach the server: the `kubernetes` Service's endpoint (none when unset). */
  advertise?: ApiServerEndpoint;
  /** Where the nodes/proxy subresource reaches what a node serves on a port (without it, no node can be reached). */
  nodeProxy?: NodeProxyTarget;
  log?: Logger;
}

const MAX_BODY = 16 * 1024 * 1024;

/** What a dataFile holds: the store, plus the token and certificate so old kubeconfigs keep working. */
interface DataFile extends StoreSnapshot {
  credentials?: { token: string } & ServingCert;
}
const HEALTH_PATHS = new Set(['/healthz', '/livez', '/readyz']);

interface Accept {
  table?: string;
  partial?: string;
  partialList?: string;
}

/** Which representation the client asked for: the first media range we can serve wins. */
function negotiate(header: string | undefined): Accept {
  if (!header) return {};
  let sawServable = false;
  for (const clause of header.split(',')) {
    const [type, ...paramParts] = clause.split(';').map((s) => s.trim());
    const params = Object.fromEntries(paramParts.map((p) => p.split('=').map((s) => s.trim())) as Array<[string, string]>);
    const t = (type ?? '').toLowerCase();
    if (t !== 'application/json' && t !== '*/*' && t !== 'application/*' && t !== 'application/yaml') continue;
    if (!params.as) {
      sawServable = true;
      break;
    }
    if (params.g === 'meta.k8s.io' && (params.v === 'v1' || params.v === 'v1beta1')) {
      const apiVersion = `meta.k8s.io/${params.v}`;
      if (params.as === 'Table') return { table: apiVersion };
      if (params.as === 'PartialObjectMetadata') return { partial: apiVersion };
      if (params.as === 'PartialObjectMetadataList') return { partialList: apiVersion };
    }
  }
  if (!sawServable && !/application\/json|\*\/\*|application\/\*|application\/yaml/.test(header)) {
    throw errors.notAcceptable(['application/json', 'application/yaml']);
  }
  return {};
}

function wantsYaml(header: string | undefined): boolean {
  return !!header && /^\s*application\/yaml/i.test(header);
}

interface Route {
  rt: ResourceType;
  version: string;
  namespace?: string;
  name?: string;
  subresource?: string;
  watch: boolean;
}

function boolParam(q: URLSearchParams, k: string): boolean | undefined {
  const v = q.get(k);
  if (v === null) return undefined;
  return v === 'true' || v === '1' || v === '';
}

function intParam(q: URLSearchParams, k: string): number | undefined {
  const v = q.get(k);
  if (v === null || v === '') return undefined;
  if (!/^-?\d+$/.test(v)) throw errors.badRequest(`invalid value for ${k}: ${JSON.stringify(v)}`);
  return Number(v);
}

function writeOptions(q: URLSearchParams, warnings: string[]): WriteOptions {
  const dry = q.getAll('dryRun');
  if (dry.some((d) => d !== 'All')) throw errors.badRequest(`Invalid dryRun value: ${dry.join(',')}; only All is supported`);
  const fv = q.get('fieldValidation');
  if (fv !== null && fv !== '' && !['Strict', 'Warn', 'Ignore'].includes(fv)) {
    throw errors.badRequest(`fieldValidation: Unsupported value: "${fv}": supported values: "Ignore", "Strict", "Warn"`);
  }
  return { dryRun: dry.length > 0, ...(fv ? { fieldValidation: fv as WriteOptions['fieldValidation'] } : {}), warnings };
}

/**
 * A Kubernetes-API-compatible server for the lab on 127.0.0.1, good enough for kubectl and
 * client-node informers; `store` is the same data in-process. One port speaks plain HTTP (`url`)
 * and HTTPS (`httpsUrl`, self-signed): client-go sends bearer tokens only over TLS, so the
 * kubeconfig written for kubectl points at HTTPS with the certificate as its CA.
 */
export class ApiServer {
  readonly store: Store;
  private readonly log: Logger;
  private readonly server: Server;
  private readonly tlsServer: HttpsServer;
  private readonly tcp: TcpServer;
  private readonly unix: TcpServer | undefined;
  /** Every accepted connection: the HTTP servers never listen themselves, so they do not track them. */
  private readonly sockets = new Set<Socket>();
  private readonly openWatches = new Set<() => void>();
  private persistTimer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private dirty = false;
  private closing: Promise<void> | undefined;
  private openapiCache: { generation: number; root: JsonObject; docs: Map<string, JsonObject | undefined> } | undefined;
  private boundPort = 0;
  /** Decides access reviews, and the requests of users other than the admin, over the store's RBAC objects. */
  readonly authorizer: RbacAuthorizer;
  /** ServiceAccount tokens (TokenRequest), which authenticate as their ServiceAccount. */
  private readonly serviceAccountTokens: ServiceAccountTokens;

  private constructor(
    readonly token: string,
    /** The serving certificate (PEM), which is also the CA clients should trust. */
    readonly tls: ServingCert,
    private readonly opts: ApiServerOptions,
  ) {
    this.log = opts.log ?? logger('apiserver');
    this.store = new Store({
      ...(opts.historySize !== undefined ? { historySize: opts.historySize } : {}),
      ...(opts.bookmarkIntervalMs !== undefined ? { bookmarkIntervalMs: opts.bookmarkIntervalMs } : {}),
      ...(opts.serviceCIDR !== undefined ? { serviceCIDR: opts.serviceCIDR } : {}),
      log: this.log,
    });
    this.authorizer = new RbacAuthorizer(storeRbacObjects(this.store));
    this.serviceAccountTokens = new ServiceAccountTokens(token, (namespace, name) => this.resource('v1', 'serviceaccounts').tryGet(name, namespace));
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.handle(req, res);
    this.server = createServer(handler);
    this.tlsServer = createHttpsServer({ key: tls.key, cert: tls.cert }, handler);
    for (const s of [this.server, this.tlsServer]) {
      // Long watches must not be cut by Node's request timeouts.
      s.requestTimeout = 0;
      s.headersTimeout = 60_000;
      // Clients keep idle connections for reuse; closing them after Node's default 5 s races with a request just
      // sent on one (ECONNRESET on a busy machine). kube-apiserver keeps them far longer too.
      s.keepAliveTimeout = 120_000;
    }
    // The first byte tells a TLS handshake (0x16) from an HTTP request line.
    const accept = (socket: Socket): void => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      socket.once('data', (first: Buffer) => {
        socket.pause();
        socket.unshift(first);
        (first[0] === 0x16 ? this.tlsServer : this.server).emit('connection', socket);
        process.nextTick(() => socket.resume());
      });
    };
    this.tcp = createTcpServer(accept);
    this.unix = opts.unixSocket ? createTcpServer(accept) : undefined;
  }

  static async start(opts: ApiServerOptions = {}): Promise<ApiServer> {
    let snap: DataFile | undefined;
    if (opts.dataFile && existsSync(opts.dataFile)) {
      snap = JSON.parse(readFileSync(opts.dataFile, 'utf8')) as DataFile;
      if (snap.version !== 1 || !Array.isArray(snap.objects)) throw new Error(`${opts.dataFile}: not an API server snapshot`);
    }
    // A restarted server keeps its token and certificate, so clients configured before still work.
    const token = opts.token ?? snap?.credentials?.token ?? randomBytes(24).toString('base64url');
    const tls = snap?.credentials ? { key: snap.credentials.key, cert: snap.credentials.cert } : selfSignedCert();
    const api = new ApiServer(token, tls, opts);
    if (snap) {
      api.store.restore(snap);
      api.log.info({ dataFile: opts.dataFile, objects: snap.objects.length, resourceVersion: snap.resourceVersion }, 'restored store');
    }
    api.store.bootstrap();
    // kube's bootstrap RBAC policy: what every authenticated user may do (discovery, reviewing its own access).
    for (const [resource, objects] of [['clusterroles', DEFAULT_CLUSTER_ROLES], ['clusterrolebindings', DEFAULT_CLUSTER_ROLE_BINDINGS]] as const) {
      const client = api.resource('rbac.authorization.k8s.io/v1', resource);
      for (const o of objects) if (!client.tryGet(String((o.metadata as JsonObject).name))) client.create(o as KubeObject);
    }
    if (opts.dataFile) {
      api.store.onChange(() => api.schedulePersist());
      api.persistNow();
    }
    const listen = (server: TcpServer, where: { port: number; host: string } | { path: string }): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(where, () => {
          server.off('error', reject);
          resolve();
        });
      });
    try {
      await listen(api.tcp, { port: opts.port ?? 0, host: '127.0.0.1' });
      if (api.unix && opts.unixSocket) {
        // A socket file left by a server that died is in the way; nothing listens on it any more.
        rmSync(opts.unixSocket, { force: true });
        await listen(api.unix, { path: opts.unixSocket });
      }
    } catch (e) {
      api.store.close();
      api.tcp.close();
      throw e;
    }
    api.boundPort = (api.tcp.address() as AddressInfo).port;
    try {
      reconcileKubernetesService((v, r) => api.resource(v, r), parseCidr4(opts.serviceCIDR ?? DEFAULT_SERVICE_CIDR), opts.advertise?.port ?? api.boundPort, opts.advertise);
    } catch (e) {
      // A restored store may hold something in its way; the server still serves everything else.
      api.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'cannot reconcile the kubernetes Service');
    }
    api.log.info({ url: api.url }, 'API server listening');
    return api;
  }

  /** The TCP port on 127.0.0.1 (both HTTP and HTTPS). */
  get port(): number {
    return this.boundPort;
  }

  /** Plain HTTP: for client-node and in-lab clients that send the token themselves. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The same server over TLS (self-signed; trust `tls.cert`). */
  get httpsUrl(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** In-process access to a resource: `api.resource('v1', 'pods').create(...)`. */
  resource(apiVersion: string, resource: string): ResourceClient {
    return new ResourceClient(this.store, apiVersion, resource);
  }

  /**
   * A kubeconfig (context `seine-lab`) for this server: HTTPS with the server's certificate as CA,
   * which kubectl needs to send the token; `plain` gives the HTTP URL instead (client-node only:
   * kubectl would not send the token over plain HTTP).
   */
  kubeconfig(opts: { context?: string; namespace?: string; plain?: boolean } = {}): string {
    const name = opts.context ?? 'seine-lab';
    // client-node refuses http:// unless TLS verification is "skipped", hence the flag on plain.
    const cluster = opts.plain
      ? { server: this.url, 'insecure-skip-tls-verify': true }
      : { server: this.httpsUrl, 'certificate-authority-data': Buffer.from(this.tls.cert).toString('base64') };
    return stringifyYaml({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name, cluster }],
      users: [{ name: `${name}-admin`, user: { token: this.token } }],
      contexts: [{ name, context: { cluster: name, user: `${name}-admin`, namespace: opts.namespace ?? 'default' } }],
      'current-context': name,
      preferences: {},
    });
  }

  /** Writes kubeconfig() to `path` (mode 0600), creating its directory. */
  writeKubeconfig(path: string, opts: { context?: string; namespace?: string; plain?: boolean } = {}): void {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, this.kubeconfig(opts), { mode: 0o600 });
  }

  /** Ends every open watch stream (clients see the connection close and re-watch). */
  closeWatches(): void {
    this.store.closeWatches();
  }

  /** Stops serving, ends watches, and writes the last snapshot. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.store.close();
      for (const end of [...this.openWatches]) end();
      const closed = [this.tcp, ...(this.unix ? [this.unix] : [])].map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
      for (const s of this.sockets) s.destroy();
      await Promise.all(closed);
      if (this.opts.unixSocket) rmSync(this.opts.unixSocket, { force: true });
      if (this.persistTimer) clearTimeout(this.persistTimer);
      await this.writing;
      if (this.opts.dataFile) this.persistNow();
      this.log.info({ url: this.url }, 'API server stopped');
    })();
    return this.closing;
  }

  // ---- persistence

  private schedulePersist(): void {
    this.dirty = true;
    if (this.persistTimer || this.closing) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = undefined;
      void this.persistAsync();
    }, this.opts.persistDebounceMs ?? 100);
  }

  private async persistAsync(): Promise<void> {
    if (this.writing) {
      this.schedulePersist();
      return;
    }
    const file = this.opts.dataFile!;
    this.dirty = false;
    const tmp = `${file}.tmp-${process.pid}`;
    this.writing = (async () => {
      try {
        mkdirSync(dirname(file), { recursive: true });
        await writeFile(tmp, this.dataFileText(), { mode: 0o600 });
        await rename(tmp, file);
      } catch (e) {
        this.log.error({ err: e, file }, 'writing store snapshot failed');
      }
    })();
    await this.writing;
    this.writing = undefined;
    if (this.dirty && !this.closing) this.schedulePersist();
  }

  private dataFileText(): string {
    const data: DataFile = { ...this.store.snapshot(), credentials: { token: this.token, ...this.tls } };
    return JSON.stringify(data);
  }

  private persistNow(): void {
    const file = this.opts.dataFile!;
    const tmp = `${file}.tmp-${process.pid}`;
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(tmp, this.dataFileText(), { mode: 0o600 });
    renameSync(tmp, file);
    this.dirty = false;
  }

  // ---- HTTP

  /**
   * The user a request's bearer token authenticates as: the lab admin (the lab's token), or a ServiceAccount (a token
   * from TokenRequest, for the API server's audience); undefined for anyone else.
   */
  private authenticate(req: IncomingMessage): UserInfo | undefined {
    const h = req.headers.authorization;
    if (!h?.startsWith('Bearer ')) return undefined;
    const user = this.userOfToken(h.slice(7).trim());
    return user && (user.audiences ?? LAB_API_AUDIENCES).some((a) => LAB_API_AUDIENCES.includes(a)) ? user : undefined;
  }

  private userOfToken(token: string): UserInfo | undefined {
    return this.isToken(token) ? { username: LAB_ADMIN_USER, groups: LAB_ADMIN_GROUPS } : this.serviceAccountTokens.userOf(token);
  }

  /** Whether `token` is the lab's token (the lab admin's). */
  private isToken(token: string): boolean {
    const got = Buffer.from(token);
    const want = Buffer.from(this.token);
    return got.length === want.length && timingSafeEqual(got, want);
  }

  /**
   * Who an authenticated request acts as: its user, or the one it impersonates (`kubectl --as`, `--as-group`), if
   * RBAC lets its user impersonate them (the admin, in system:masters, may). As kube does, an impersonated user is
   * also in system:authenticated, and a ServiceAccount given without groups is in its ServiceAccount groups.
   */
  private requester(req: IncomingMessage, user: UserInfo): UserInfo {
    const username = req.headersDistinct['impersonate-user']?.[0];
    const asGroups = req.headersDistinct['impersonate-group'] ?? [];
    if (!username) {
      if (asGroups.length) throw errors.internal('requested impersonation of groups without a user');
      return user;
    }
    const sa = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(username);
    const wanted: ResourceAttributes[] = [
      sa ? { verb: 'impersonate', group: '', resource: 'serviceaccounts', namespace: sa[1]!, name: sa[2]! } : { verb: 'impersonate', group: '', resource: 'users', name: username },
      ...asGroups.map((g) => ({ verb: 'impersonate', group: '', resource: 'groups', name: g })),
    ];
    for (const w of wanted) {
      const d = this.authorizer.authorize(user, { resource: w });
      if (!d.allowed) throw forbidden(user.username, { resource: w }, d.reason);
    }
    const groups = asGroups.length || !sa ? [...asGroups] : ['system:serviceaccounts', `system:serviceaccounts:${sa[1]}`];
    if (username !== 'system:anonymous' && !groups.includes('system:authenticated')) groups.push('system:authenticated');
    return { username, groups };
  }

  private send(res: ServerResponse, code: number, body: unknown, req?: IncomingMessage, warnings: string[] = []): void {
    if (res.headersSent) {
      res.end();
      return;
    }
    const yaml = req && wantsYaml(req.headers.accept);
    const text = yaml ? stringifyYaml(body) : JSON.stringify(body);
    const headers: Record<string, string | string[]> = { 'Content-Type': yaml ? 'application/yaml' : 'application/json', 'Cache-Control': 'no-cache, private' };
    if (warnings.length) headers.Warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
    res.writeHead(code, headers);
    res.end(text);
  }

  private sendError(res: ServerResponse, e: unknown): void {
    const err = e instanceof ApiError ? e : errors.internal(e instanceof Error ? e.message : String(e));
    if (!(e instanceof ApiError)) this.log.error({ err: e }, 'request failed');
    this.send(res, err.code, err.toStatus());
  }

  private async readBody(req: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > MAX_BODY) throw errors.tooLarge('the request body is too large');
      chunks.push(c as Buffer);
    }
    return Buffer.concat(chunks);
  }

  /** Decodes a JSON or YAML request body; `undefined` for an empty one. */
  private async readObject(req: IncomingMessage, contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()): Promise<unknown> {
    const raw = await this.readBody(req);
    if (raw.length === 0) return undefined;
    if (contentType === 'application/vnd.kubernetes.protobuf') return decodeKubeProtobuf(raw);
    if (contentType.includes('protobuf') || contentType.includes('cbor')) {
      throw errors.unsupportedMediaType(contentType, ['application/json', 'application/yaml', 'application/vnd.kubernetes.protobuf']);
    }
    const text = raw.toString('utf8');
    try {
      if (contentType.includes('yaml')) return parseYaml(text) as unknown;
      return JSON.parse(text) as unknown;
    } catch (e) {
      if (e instanceof ApiError) throw e;
      throw errors.badRequest(`couldn't decode the request body: ${(e as Error).message}`);
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const url = new URL(req.url ?? '/', 'http://localhost');
    res.on('finish', () => {
      this.log.debug({ method: req.method, path: url.pathname, query: url.search || undefined, status: res.statusCode, ms: Math.round(performance.now() - started), agent: req.headers['user-agent'] }, 'request');
    });
    try {
      if (HEALTH_PATHS.has(url.pathname) && req.method === 'GET') {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('ok');
        return;
      }
      const authenticated = this.authenticate(req);
      if (!authenticated) throw errors.unauthorized();
      const user = this.requester(req, authenticated);
      // The admin is in system:masters (allowed everything); anyone else is held to RBAC, as kube-apiserver does.
      if (!user.groups.includes(PRIVILEGED_GROUP)) {
        const attrs = requestAttributes(req.method ?? 'GET', url.pathname, url.searchParams);
        const decision = this.authorizer.authorize(user, attrs);
        if (!decision.allowed) throw forbidden(user.username, attrs, decision.reason);
      }
      await this.route(req, res, url, user);
    } catch (e) {
      this.sendError(res, e);
    }
  }

  private openapi(): NonNullable<ApiServer['openapiCache']> {
    const reg = this.store.registry;
    if (!this.openapiCache || this.openapiCache.generation !== reg.generation) {
      this.openapiCache = { generation: reg.generation, root: openApiV3Root(reg), docs: new Map() };
    }
    return this.openapiCache;
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL, user: UserInfo): Promise<void> {
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const seg = path.split('/').filter(Boolean).map(decodeURIComponent);
    const reg = this.store.registry;
    const get = req.method === 'GET';
    // Discovery and OpenAPI.
    if (get) {
      if (path === '/version') return this.send(res, 200, versionInfo(), req);
      if (path === '/api') return this.send(res, 200, apiVersions(`127.0.0.1:${this.port}`), req);
      if (path === '/apis') return this.send(res, 200, apiGroupList(reg), req);
      if (seg[0] === 'api' && seg.length === 2) {
        const list = apiResourceList(reg, '', seg[1]!);
        return list ? this.send(res, 200, list, req) : this.sendError(res, errors.noRoute());
      }
      if (seg[0] === 'apis' && seg.length === 2) {
        const g = apiGroup(reg, seg[1]!);
        return g ? this.send(res, 200, g, req) : this.sendError(res, errors.noRoute());
      }
      if (seg[0] === 'apis' && seg.length === 3) {
        const list = apiResourceList(reg, seg[1]!, seg[2]!);
        return list ? this.send(res, 200, list, req) : this.sendError(res, errors.noRoute());
      }
      if (path === '/openapi/v2') {
        const format = openApiV2Format(req.headers.accept);
        const doc = cachedOpenApiV2(reg, () => openApiV2(reg), format);
        if (format === 'json') return this.send(res, 200, doc);
        res.writeHead(200, { 'Content-Type': OPENAPI_V2_PROTOBUF, 'Cache-Control': 'no-cache, private' });
        return void res.end(doc);
      }
      if (path === '/openapi/v3') return this.send(res, 200, this.openapi().root);
      if (seg[0] === 'openapi' && seg[1] === 'v3' && seg.length >= 4) {
        const [group, version] = seg[2] === 'api' ? ['', seg[3]!] : [seg[3] ?? '', seg[4] ?? ''];
        const cache = this.openapi();
        const key = `${group}/${version}`;
        if (!cache.docs.has(key)) cache.docs.set(key, openApiV3Doc(reg, group, version));
        const doc = cache.docs.get(key);
        return doc ? this.send(res, 200, doc) : this.sendError(res, errors.noRoute());
      }
    }
    if (path === `/apis/${TOKEN_REVIEW_GROUP}/${TOKEN_REVIEW_VERSION}/${TOKEN_REVIEW_RESOURCE}`) {
      if (req.method !== 'POST') throw errors.methodNotAllowed();
      const review = reviewToken(await this.readObject(req), (token) => this.userOfToken(token));
      return this.send(res, 201, review, req);
    }
    const review = accessReviewRoute(seg);
    if (review) {
      if (req.method !== 'POST') throw errors.methodNotAllowed();
      return this.send(res, 201, reviewAccess(review.kind, review.namespace, await this.readObject(req), user, this.authorizer), req);
    }
    // TokenRequest: POST /api/v1/namespaces/NS/serviceaccounts/NAME/token.
    if (seg.length === 7 && seg[0] === 'api' && seg[1] === 'v1' && seg[2] === 'namespaces' && seg[4] === 'serviceaccounts' && seg[6] === 'token') {
      if (req.method !== 'POST') throw errors.methodNotAllowed();
      return this.send(res, 201, this.serviceAccountTokens.issue(seg[3]!, seg[5]!, await this.readObject(req)), req);
    }
    const proxied = nodeProxyRequest(url.pathname);
    if (proxied) return proxyToNode(req, res, proxied, url.search, { node: (name) => this.resource('v1', 'nodes').tryGet(name), target: this.opts.nodeProxy });
    const r = this.resolve(seg, url.searchParams);
    if (!r) throw errors.noRoute();
    await this.serveResource(req, res, url.searchParams, r);
  }

  /** Maps `/api/v1/namespaces/ns/pods/name/status` (and friends) to a resource route. */
  private resolve(seg: string[], q: URLSearchParams): Route | undefined {
    let group: string;
    let version: string;
    let rest: string[];
    if (seg[0] === 'api' && seg.length >= 3) {
      group = '';
      version = seg[1]!;
      rest = seg.slice(2);
    } else if (seg[0] === 'apis' && seg.length >= 4) {
      group = seg[1]!;
      version = seg[2]!;
      rest = seg.slice(3);
    } else return undefined;
    let watch = boolParam(q, 'watch') === true;
    if (rest[0] === 'watch') {
      watch = true;
      rest = rest.slice(1);
    }
    let namespace: string | undefined;
    // `namespaces/x` is the namespace itself; `namespaces/x/status|finalize` its subresources;
    // `namespaces/x/<resource>...` a namespaced resource.
    if (rest[0] === 'namespaces' && rest.length >= 3 && !(rest.length === 3 && (rest[2] === 'status' || rest[2] === 'finalize'))) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const [resource, name, subresource, ...extra] = rest;
    if (!resource || extra.length) return undefined;
    const rt = this.store.registry.served(group, version, resource);
    if (!rt) return undefined;
    if (namespace !== undefined && !rt.namespaced) return undefined;
    if (subresource && !hasSubresource(rt, version, subresource)) return undefined;
    return { rt, version, ...(namespace !== undefined ? { namespace } : {}), ...(name ? { name } : {}), ...(subresource ? { subresource } : {}), watch };
  }

  private async serveResource(req: IncomingMessage, res: ServerResponse, q: URLSearchParams, r: Route): Promise<void> {
    const { rt, version, namespace, name, subresource } = r;
    const store = this.store;
    const warnings: string[] = [];
    const accept = negotiate(req.headers.accept);
    const include = (q.get('includeObject') ?? 'Metadata') as IncludeObject;
    if (!['None', 'Metadata', 'Object'].includes(include)) throw errors.badRequest(`includeObject: Unsupported value: "${include}"`);
    const render = (o: KubeObject): unknown => {
      if (accept.table) return toTable(rt, version, [o], { resourceVersion: o.metadata.resourceVersion ?? '' }, include, accept.table);
      if (accept.partial) return { kind: 'PartialObjectMetadata', apiVersion: accept.partial, metadata: o.metadata };
      return o;
    };
    switch (req.method) {
      case 'GET': {
        if (r.watch || (name && boolParam(q, 'watch'))) return this.serveWatch(res, q, r, accept, include);
        if (name) return this.send(res, 200, render(store.get(rt, version, namespace, name)), req);
        const list = store.list(rt, version, {
          ...(namespace !== undefined ? { namespace } : {}),
          ...this.listParams(q),
        });
        if (accept.table) return this.send(res, 200, toTable(rt, version, list.items, list.metadata, include, accept.table), req);
        if (accept.partialList || accept.partial) {
          const apiVersion = accept.partialList ?? accept.partial!;
          return this.send(res, 200, { kind: 'PartialObjectMetadataList', apiVersion, metadata: list.metadata, items: list.items.map((o) => ({ kind: 'PartialObjectMetadata', apiVersion, metadata: o.metadata })) }, req);
        }
        return this.send(res, 200, list, req);
      }
      case 'POST': {
        if (name && subresource === 'binding') {
          const body = await this.readObject(req);
          return this.send(res, 201, store.bind(namespace!, name, body), req);
        }
        if (name) throw errors.methodNotAllowed();
        if (rt.namespaced && namespace === undefined) throw errors.methodNotAllowed();
        const body = await this.readObject(req);
        const created = store.create(rt, version, namespace, body, writeOptions(q, warnings));
        return this.send(res, 201, render(created), req, warnings);
      }
      case 'PUT': {
        if (!name || subresource === 'binding') throw errors.methodNotAllowed();
        const body = await this.readObject(req);
        const out = store.update(rt, version, namespace, name, body, { ...writeOptions(q, warnings), ...(subresource ? { subresource } : {}) });
        return this.send(res, out.created ? 201 : 200, render(out.object), req, warnings);
      }
      case 'PATCH': {
        if (!name || subresource === 'binding' || subresource === 'finalize') throw errors.methodNotAllowed();
        const ct = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
        const type = PATCH_CONTENT_TYPES[ct];
        if (!type) throw errors.unsupportedMediaType(ct, Object.keys(PATCH_CONTENT_TYPES));
        const body = await this.readObject(req, ct);
        if (body === undefined) throw errors.badRequest('the patch body is empty');
        const out = store.patch(rt, version, namespace, name, type, body, { ...writeOptions(q, warnings), ...(subresource ? { subresource } : {}) });
        return this.send(res, out.created ? 201 : 200, render(out.object), req, warnings);
      }
      case 'DELETE': {
        if (subresource) throw errors.methodNotAllowed();
        const body = await this.readObject(req);
        const opts = this.deleteOptions(q, body);
        if (!name) {
          const list = store.deleteCollection(rt, version, { ...(namespace !== undefined ? { namespace } : {}), ...this.listParams(q), ...opts });
          return this.send(res, 200, list, req);
        }
        const out = store.delete(rt, version, namespace, name, opts);
        if (out.deleted && !rt.returnDeletedObject) {
          return this.send(res, 200, successStatus({ name, ...(rt.group ? { group: rt.group } : {}), kind: rt.resource, uid: out.object.metadata.uid! }), req);
        }
        return this.send(res, 200, render(out.object), req);
      }
      default:
        throw errors.methodNotAllowed();
    }
  }

  private listParams(q: URLSearchParams): Record<string, unknown> {
    const rvm = q.get('resourceVersionMatch');
    if (rvm && rvm !== 'Exact' && rvm !== 'NotOlderThan') throw errors.badRequest(`resourceVersionMatch: Unsupported value: "${rvm}": supported values: "Exact", "NotOlderThan"`);
    const out: Record<string, unknown> = {};
    for (const k of ['labelSelector', 'fieldSelector', 'continue', 'resourceVersion'] as const) {
      const v = q.get(k);
      if (v !== null && v !== '') out[k] = v;
    }
    const limit = intParam(q, 'limit');
    if (limit !== undefined) out.limit = limit;
    if (rvm) out.resourceVersionMatch = rvm;
    return out;
  }

  private deleteOptions(q: URLSearchParams, body: unknown): DeleteOptions {
    const b = isObject(body) ? body : {};
    const opts: DeleteOptions = {};
    const grace = typeof b.gracePeriodSeconds === 'number' ? b.gracePeriodSeconds : intParam(q, 'gracePeriodSeconds');
    if (grace !== undefined) opts.gracePeriodSeconds = grace;
    const policy = (typeof b.propagationPolicy === 'string' ? b.propagationPolicy : q.get('propagationPolicy')) ?? undefined;
    if (policy) opts.propagationPolicy = policy as PropagationPolicy;
    const orphan = typeof b.orphanDependents === 'boolean' ? b.orphanDependents : boolParam(q, 'orphanDependents');
    if (orphan !== undefined) opts.orphanDependents = orphan;
    if (isObject(b.preconditions)) {
      const p = b.preconditions;
      opts.preconditions = { ...(typeof p.uid === 'string' ? { uid: p.uid } : {}), ...(typeof p.resourceVersion === 'string' ? { resourceVersion: p.resourceVersion } : {}) };
    }
    const dry = Array.isArray(b.dryRun) ? (b.dryRun as string[]) : q.getAll('dryRun');
    if (dry.length) opts.dryRun = true;
    return opts;
  }

  private serveWatch(res: ServerResponse, q: URLSearchParams, r: Route, accept: Accept, include: IncludeObject): void {
    const { rt, version, namespace, name } = r;
    let fieldSelector = q.get('fieldSelector') ?? '';
    if (name) fieldSelector = [fieldSelector, `metadata.name=${name}`].filter(Boolean).join(',');
    const timeout = intParam(q, 'timeoutSeconds');
    const sendInitial = boolParam(q, 'sendInitialEvents');
    const encode = (ev: WatchEvent): string => {
      if (accept.table && (ev.type === 'ADDED' || ev.type === 'MODIFIED' || ev.type === 'DELETED')) {
        return JSON.stringify({ type: ev.type, object: toTable(rt, version, [ev.object], { resourceVersion: ev.object.metadata.resourceVersion ?? '' }, include, accept.table) });
      }
      if ((accept.partial || accept.partialList) && ev.type !== 'ERROR') {
        return JSON.stringify({ type: ev.type, object: { kind: 'PartialObjectMetadata', apiVersion: accept.partial ?? accept.partialList, metadata: ev.object.metadata } });
      }
      return JSON.stringify(ev);
    };
    let ended = false;
    const watch: { handle?: { stop(): void } } = {};
    let timer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      if (ended) return;
      ended = true;
      watch.handle?.stop();
      if (timer) clearTimeout(timer);
      this.openWatches.delete(finish);
      res.end();
    };
    // Parameters are checked before committing to a 200 stream; later failures arrive as ERROR events.
    const lp = this.listParams(q);
    this.store.checkWatch(rt, { ...(typeof lp.labelSelector === 'string' ? { labelSelector: lp.labelSelector } : {}), ...(fieldSelector ? { fieldSelector } : {}), ...(typeof lp.resourceVersion === 'string' ? { resourceVersion: lp.resourceVersion } : {}) });
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    this.openWatches.add(finish);
    // The response's close covers both a finished stream and a client that went away.
    res.on('close', finish);
    watch.handle = this.store.watch(
      rt,
      version,
      {
        ...(namespace !== undefined ? { namespace } : {}),
        ...(typeof lp.labelSelector === 'string' ? { labelSelector: lp.labelSelector } : {}),
        ...(fieldSelector ? { fieldSelector } : {}),
        ...(typeof lp.resourceVersion === 'string' ? { resourceVersion: lp.resourceVersion } : {}),
        allowWatchBookmarks: boolParam(q, 'allowWatchBookmarks') === true,
        ...(sendInitial !== undefined ? { sendInitialEvents: sendInitial } : {}),
      },
      {
        event: (ev) => {
          if (!ended) res.write(`${encode(ev)}\n`);
        },
        end: finish,
      },
    );
    if (ended) watch.handle.stop();
    else if (timeout !== undefined && timeout > 0) timer = setTimeout(finish, timeout * 1000);
  }
}
