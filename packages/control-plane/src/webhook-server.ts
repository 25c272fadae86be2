/**
 * The sidecar injection webhook: HTTPS server for the API server's MutatingWebhookConfiguration.
 *
 *   POST /inject   AdmissionReview v1 in, AdmissionReview v1 out (see injector.ts)
 *   GET  /healthz  200 {"status":"ok"}
 *
 * TLS material is PEM text or file paths; files are polled and re-read when they change (a rotated
 * Secret volume swaps its `..data` symlink), and a new pair is used for new connections once it loads
 * as a matching cert/key pair. Without TLS material the server speaks plain HTTP (tests only: the API
 * server calls webhooks over HTTPS).
 */
import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { isIPv6, type AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import type { Logger } from '@sluice/core';
import { admit, allowWithoutPatch, requestNamespace, requestUid, validateInjectorOptions, type InjectorOptions, type Labels } from './injector.js';

export const WEBHOOK_PATH = '/inject';
export const DEFAULT_WEBHOOK_MAX_BODY_BYTES = 4 * 1024 * 1024;

/** Namespace labels for a namespace; undefined = unknown (the webhook's namespaceSelector is trusted). */
export type NamespaceLabelsLookup = (namespace: string) => Promise<Labels | undefined> | Labels | undefined;

export interface WebhookServerOptions {
  /** Listen address; default `0.0.0.0`. */
  readonly host?: string;
  /** Listen port (0 = ephemeral). */
  readonly port: number;
  /** PEM certificate (chain) or the path of a PEM file; with `tlsKey`. Absent (both) = plain HTTP. */
  readonly tlsCert?: string;
  /** PEM private key or the path of a PEM file. */
  readonly tlsKey?: string;
  /** How often certificate/key files are checked for changes; default 10000 ms. */
  readonly tlsReloadIntervalMs?: number;
  readonly injector: InjectorOptions;
  /** Looks up the labels of a request's namespace (e.g. from an informer cache). */
  readonly namespaceLabels?: NamespaceLabelsLookup;
  /** Longest wait for `namespaceLabels`; default 2000 ms, then the labels are treated as unknown. */
  readonly namespaceLookupTimeoutMs?: number;
  readonly logger: Logger;
  /** Largest request body; default 4 MiB (413 beyond). */
  readonly maxBodyBytes?: number;
  /** Time to receive a whole request body; default 10000 ms (408 beyond). */
  readonly bodyTimeoutMs?: number;
}

export interface WebhookServer {
  /** `https://host:port` (or `http://` without TLS); a wildcard host is reported as loopback. */
  readonly url: string;
  readonly port: number;
  readonly tls: boolean;
  /** Re-reads certificate/key files now; true if a new pair is in use. */
  reloadTls(): boolean;
  close(): Promise<void>;
}

function isPem(s: string): boolean {
  return s.includes('-----BEGIN ');
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function readBody(req: IncomingMessage, maxBytes: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes) return reject(new HttpError(413, `request body of ${declared} bytes is over the ${maxBytes}-byte limit`));
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err: Error | undefined, body?: Buffer): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      if (err) reject(err);
      else resolve(body ?? Buffer.alloc(0));
    };
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > maxBytes) finish(new HttpError(413, `request body is over the ${maxBytes}-byte limit`));
      else chunks.push(c);
    };
    const onEnd = (): void => finish(undefined, Buffer.concat(chunks, size));
    const onError = (e: Error): void => finish(e);
    const timer = setTimeout(() => finish(new HttpError(408, `request body not received within ${timeoutMs} ms`)), timeoutMs);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

async function lookupLabels(o: WebhookServerOptions, namespace: string | undefined): Promise<Labels | undefined> {
  if (o.namespaceLabels === undefined || namespace === undefined) return undefined;
  const lookup = o.namespaceLabels;
  const timeoutMs = o.namespaceLookupTimeoutMs ?? 2000;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      Promise.resolve().then(() => lookup(namespace)),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (e) {
    o.logger.warn({ namespace, err: e instanceof Error ? e.message : String(e) }, 'webhook: namespace labels lookup failed; trusting the namespaceSelector');
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

interface TlsSource {
  readonly cert: string;
  readonly key: string;
  /** Paths polled for changes. */
  readonly files: readonly string[];
  /** Reads the current material (throws on unreadable files). */
  read(): { cert: string; key: string };
}

function tlsSource(cert: string, key: string): TlsSource {
  const load = (v: string): string => (isPem(v) ? v : readFileSync(v, 'utf8'));
  const read = (): { cert: string; key: string } => ({ cert: load(cert), key: load(key) });
  const first = read();
  return { ...first, files: [cert, key].filter((v) => !isPem(v)), read };
}

/**
 * Starts the injection webhook. Resolves once listening; rejects on bad options, unreadable or
 * mismatched TLS material, or a port in use.
 */
export async function startWebhookServer(o: WebhookServerOptions): Promise<WebhookServer> {
  validateInjectorOptions(o.injector);
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw new Error('webhook: tlsCert and tlsKey go together');
  const maxBodyBytes = o.maxBodyBytes ?? DEFAULT_WEBHOOK_MAX_BODY_BYTES;
  const bodyTimeoutMs = o.bodyTimeoutMs ?? 10_000;
  const log = o.logger;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'method not allowed' }, { allow: 'GET, HEAD' });
      return send(res, 200, { status: 'ok' });
    }
    if (path !== WEBHOOK_PATH) return send(res, 404, { error: `no such endpoint: ${path}` });
    if (req.method !== 'POST') return send(res, 405, { error: 'method not allowed: POST an AdmissionReview' }, { allow: 'POST' });
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/json') {
      return send(res, 415, { error: `content-type ${JSON.stringify(req.headers['content-type'] ?? '')}: expected application/json` }, { connection: 'close' });
    }
    let raw: Buffer;
    try {
      raw = await readBody(req, maxBodyBytes, bodyTimeoutMs);
    } catch (e) {
      const status = e instanceof HttpError ? e.status : 400;
      log.warn({ status, err: e instanceof Error ? e.message : String(e) }, 'webhook: request body refused');
      // Stop reading the rest of an oversized or slow body: answer and close the connection.
      send(res, status, { error: e instanceof Error ? e.message : String(e) }, { connection: 'close' });
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      return send(res, 400, { error: `not an AdmissionReview: the body is not valid JSON (${e instanceof Error ? e.message : String(e)})` });
    }
    const labels = await lookupLabels(o, requestNamespace(body));
    let outcome: ReturnType<typeof admit>;
    try {
      outcome = admit(body, { ...o.injector, namespaceLabels: labels });
    } catch (e) {
      // A bug must not block pod creation: admit the pod unchanged when the request can be answered.
      const uid = requestUid(body);
      log.error({ err: e instanceof Error ? e.stack : String(e), uid }, 'webhook: injection failed; pod admitted without the sidecar');
      if (uid === undefined) return send(res, 500, { error: 'internal error' });
      return send(res, 200, allowWithoutPatch(uid, 'internal error in the Sluice injector; admitted without the sidecar'));
    }
    if (outcome.kind === 'invalid') {
      log.warn({ err: outcome.message }, 'webhook: malformed AdmissionReview');
      return send(res, 400, { error: outcome.message });
    }
    const d = outcome.decision;
    log.info(
      { uid: outcome.uid, namespace: outcome.namespace, pod: outcome.pod, injected: outcome.patch.length > 0, reason: d?.reason ?? 'not-a-pod-create', detail: d?.message ?? outcome.review.response.status?.message, ops: outcome.patch.length },
      'admission',
    );
    send(res, 200, outcome.review);
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((e: unknown) => {
      log.error({ err: e instanceof Error ? e.stack : String(e) }, 'webhook: request failed');
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  };

  let server: Server;
  let tls: TlsSource | undefined;
  let current = { cert: '', key: '' };
  const serverTimeouts = { requestTimeout: bodyTimeoutMs + 5_000, headersTimeout: 10_000, keepAliveTimeout: 30_000 };
  if (o.tlsCert !== undefined && o.tlsKey !== undefined) {
    tls = tlsSource(o.tlsCert, o.tlsKey);
    current = { cert: tls.cert, key: tls.key };
    createSecureContext(current); // throws on a bad or mismatched pair
    server = createHttpsServer({ cert: current.cert, key: current.key, minVersion: 'TLSv1.2', ...serverTimeouts }, onRequest);
  } else {
    log.warn('webhook: no TLS certificate configured, serving plain HTTP (the Kubernetes API server requires HTTPS)');
    server = createHttpServer(serverTimeouts, onRequest);
  }
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });
  server.on('tlsClientError', (err: Error) => log.debug({ err: err.message }, 'webhook: TLS handshake failed'));

  const reloadTls = (): boolean => {
    if (tls === undefined) return false;
    let next: { cert: string; key: string };
    try {
      next = tls.read();
      if (next.cert === current.cert && next.key === current.key) return false;
      createSecureContext(next);
    } catch (e) {
      // Often a half-written rotation (new cert, old key): keep serving the last good pair.
      log.error({ err: e instanceof Error ? e.message : String(e) }, 'webhook: TLS certificate reload failed; keeping the current certificate');
      return false;
    }
    (server as HttpsServer).setSecureContext({ cert: next.cert, key: next.key, minVersion: 'TLSv1.2' });
    current = next;
    log.info('webhook: TLS certificate reloaded');
    return true;
  };
  const interval = o.tlsReloadIntervalMs ?? 10_000;
  let reloadTimer: NodeJS.Timeout | undefined;
  const onFileChange = (curr: Stats, prev: Stats): void => {
    if (curr.mtimeMs === prev.mtimeMs && curr.ino === prev.ino && curr.size === prev.size) return;
    // Cert and key change together: reload once, shortly after the last change.
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(reloadTls, Math.min(100, interval));
  };
  const watched = tls?.files ?? [];

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  for (const f of watched) watchFile(f, { interval, persistent: false }, onFileChange);
  server.on('error', (e) => log.error({ err: e.message }, 'webhook: server error'));

  const addr = server.address() as AddressInfo;
  const host = addr.address === '0.0.0.0' ? '127.0.0.1' : addr.address === '::' ? '::1' : addr.address;
  const url = `${tls ? 'https' : 'http'}://${isIPv6(host) ? `[${host}]` : host}:${addr.port}`;
  log.info({ url, path: WEBHOOK_PATH, tls: tls !== undefined }, 'webhook: listening');
  let closing: Promise<void> | undefined;
  return {
    url,
    port: addr.port,
    tls: tls !== undefined,
    reloadTls,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        for (const f of watched) unwatchFile(f, onFileChange);
        clearTimeout(reloadTimer);
        server.close(() => resolve());
        server.closeIdleConnections();
        // The API server keeps connections alive; in-flight reviews are quick.
        setTimeout(() => server.closeAllConnections(), 2_000).unref();
      });
      return closing;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Environment, for the control plane binary.

export const WEBHOOK_ENV = {
  port: { env: 'SLUICE_CP_WEBHOOK_PORT', def: '', doc: 'injection webhook HTTPS port (e.g. 9443 or 8443); unset = no webhook' },
  host: { env: 'SLUICE_CP_WEBHOOK_HOST', def: '0.0.0.0', doc: 'injection webhook listen address' },
  certFile: { env: 'SLUICE_CP_WEBHOOK_CERT_FILE', def: '', doc: 'PEM certificate of the webhook (re-read on change); required with the port' },
  keyFile: { env: 'SLUICE_CP_WEBHOOK_KEY_FILE', def: '', doc: 'PEM private key of the webhook (re-read on change); required with the port' },
  image: { env: 'SLUICE_CP_SIDECAR_IMAGE', def: '', doc: 'sidecar image injected into pods; required with the port' },
  imagePullPolicy: { env: 'SLUICE_CP_SIDECAR_IMAGE_PULL_POLICY', def: '', doc: 'Always | IfNotPresent | Never; unset = Kubernetes default' },
  controlAddress: { env: 'SLUICE_CP_SIDECAR_CONTROL_ADDRESS', def: '', doc: 'control plane gRPC host:port given to sidecars; required with the port' },
  caFile: { env: 'SLUICE_CP_SIDECAR_CA_FILE', def: '', doc: 'SLUICE_SIDECAR_CA_FILE given to sidecars (path inside the sidecar); unset = none' },
  caPemFile: { env: 'SLUICE_CP_SIDECAR_CA_PEM_FILE', def: '', doc: 'CA certificate (PEM) of the gRPC port, read at start and given to sidecars inline (SLUICE_SIDECAR_CA_PEM)' },
  apiPort: { env: 'SLUICE_CP_SIDECAR_PORT', def: '4000', doc: 'LLM API port of injected sidecars (loopback; the apps\' base URLs point at it)' },
  adminPort: { env: 'SLUICE_CP_SIDECAR_ADMIN_PORT', def: '4001', doc: 'admin port of injected sidecars (probes)' },
  logLevel: { env: 'SLUICE_CP_SIDECAR_LOG_LEVEL', def: '', doc: 'log level of injected sidecars; unset = info' },
  cacheRedisUrl: { env: 'SLUICE_CP_SIDECAR_CACHE_REDIS_URL', def: '', doc: "Redis of the sidecars' shared response cache tier (SLUICE_SIDECAR_CACHE_REDIS_URL); unset = none" },
  resources: { env: 'SLUICE_CP_SIDECAR_RESOURCES', def: '', doc: 'sidecar resources as JSON {"requests":{...},"limits":{...}}; unset = 100m/128Mi, limit 512Mi' },
  namespace: { env: 'SLUICE_POD_NAMESPACE', def: 'sluice-system', doc: "the control plane's namespace (downward API), never injected" },
} as const;

/**
 * Webhook options from the environment, or undefined when `SLUICE_CP_WEBHOOK_PORT` is unset.
 * Throws with the variable's name on a bad or missing value.
 */
export function loadWebhookOptions(logger: Logger, env: NodeJS.ProcessEnv = process.env): WebhookServerOptions | undefined {
  const get = (k: keyof typeof WEBHOOK_ENV): string => (env[WEBHOOK_ENV[k].env] ?? WEBHOOK_ENV[k].def).trim();
  const portText = get('port');
  if (portText === '') return undefined;
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${WEBHOOK_ENV.port.env}=${portText}: must be a port number`);
  const required = (k: keyof typeof WEBHOOK_ENV): string => {
    const v = get(k);
    if (v === '') throw new Error(`${WEBHOOK_ENV[k].env} is required when ${WEBHOOK_ENV.port.env} is set`);
    return v;
  };
  const pull = get('imagePullPolicy');
  if (pull !== '' && pull !== 'Always' && pull !== 'IfNotPresent' && pull !== 'Never') throw new Error(`${WEBHOOK_ENV.imagePullPolicy.env}=${pull}: must be Always, IfNotPresent or Never`);
  let resources: InjectorOptions['resources'];
  const resText = get('resources');
  if (resText !== '') {
    try {
      resources = JSON.parse(resText) as InjectorOptions['resources'];
    } catch {
      throw new Error(`${WEBHOOK_ENV.resources.env}: not valid JSON`);
    }
    if (typeof resources !== 'object' || resources === null || Array.isArray(resources)) throw new Error(`${WEBHOOK_ENV.resources.env}: must be a JSON object`);
  }
  const sidecarPort = (k: 'apiPort' | 'adminPort'): number => {
    const n = Number(get(k));
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${WEBHOOK_ENV[k].env}=${get(k)}: must be a port number`);
    return n;
  };
  const apiPort = sidecarPort('apiPort');
  const adminPort = sidecarPort('adminPort');
  const logLevel = get('logLevel');
  const cacheRedisUrl = get('cacheRedisUrl');
  const caFile = get('caFile');
  const caPemFile = get('caPemFile');
  let caPem = '';
  if (caPemFile !== '') {
    try {
      caPem = readFileSync(caPemFile, 'utf8').trim();
    } catch (e) {
      throw new Error(`${WEBHOOK_ENV.caPemFile.env}=${caPemFile}: ${(e as Error).message}`, { cause: e });
    }
  }
  return {
    host: get('host'),
    port,
    tlsCert: required('certFile'),
    tlsKey: required('keyFile'),
    logger,
    injector: {
      image: required('image'),
      ...(pull === '' ? {} : { imagePullPolicy: pull }),
      controlAddress: required('controlAddress'),
      controlPlaneNamespace: get('namespace'),
      ...(caFile === '' ? {} : { caFile }),
      ...(caPem === '' ? {} : { caPem }),
      apiPort,
      adminPort,
      ...(logLevel === '' ? {} : { logLevel }),
      ...(cacheRedisUrl === '' ? {} : { cacheRedisUrl }),
      ...(resources === undefined ? {} : { resources }),
    },
  };
}
