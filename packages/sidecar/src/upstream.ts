import { readFile } from 'node:fs/promises';
import { Pool, request as undiciRequest, errors as undiciErrors, type Dispatcher } from 'undici';
import { SluiceError } from '@sluice/core';
import type { SnapshotBackend } from '@sluice/policy';
/** The AWS libraries (SigV4, event-stream) are loaded by the first Bedrock request, not at start. */
let awsModule: typeof import('./aws.js') | undefined;

/** The AWS module once a Bedrock request has loaded it (its response parser is needed synchronously). */
export function loadedAws(): typeof import('./aws.js') {
  if (awsModule === undefined) throw new SluiceError('SLUICE_ERR_INTERNAL', 'AWS support used before it was loaded');
  return awsModule;
}

/**
 * One undici connection pool per backend origin, keep-alive, reused across snapshots while the
 * origin and connect timeout stay the same.
 */
export class UpstreamPools {
  readonly #pools = new Map<string, Pool>();
  /** Service-account signers (Vertex AI) by key; google-auth-library is loaded only when one is needed. */
  readonly #signers = new Map<string, Promise<{ getRequestHeaders(url?: string): Promise<Headers> }>>();

  #adc: Promise<{ getRequestHeaders(url?: string): Promise<Headers> }> | undefined;

  /**
   * Google application default credentials (Vertex AI backends without a key): GKE workload identity
   * through the metadata server, or GOOGLE_APPLICATION_CREDENTIALS; google-auth-library caches and
   * renews the token.
   */
  async adcToken(backend: SnapshotBackend): Promise<string> {
    this.#adc ??= import('google-auth-library').then(({ GoogleAuth }) => new GoogleAuth({ scopes: ['https://www.googleapis.com/auth/cloud-platform'] }).getClient());
    try {
      const value = (await (await this.#adc).getRequestHeaders()).get('authorization');
      if (value === null) throw new Error('no authorization header');
      return value;
    } catch (e) {
      this.#adc = undefined;
      throw new SluiceError('SLUICE_ERR_UPSTREAM_AUTH', `Backend ${backend.id}: no Google credentials (workload identity / application default credentials): ${(e as Error).message}`);
    }
  }

  readonly #entra = new Map<string, { token: string; expiresAtMs: number; pending: Promise<string> | undefined }>();

  /**
   * The `authorization` value of an Azure backend with `auth: entra`: an access token for Azure
   * OpenAI (scope `https://cognitiveservices.azure.com/.default`) from the Entra ID token endpoint,
   * by client credentials (the client secret from the Secret) or workload identity (a federated
   * token read from its file at each exchange, as AKS rotates it). Cached until 5 minutes before it
   * expires; one exchange at a time per registration.
   */
  async entraToken(backend: SnapshotBackend): Promise<string> {
    const now = Date.now();
    let slot = this.#entra.get(backend.authValue);
    if (slot !== undefined && slot.token !== '' && slot.expiresAtMs - 300_000 > now) return slot.token;
    if (slot?.pending !== undefined) return slot.pending;
    if (slot === undefined) {
      slot = { token: '', expiresAtMs: 0, pending: undefined };
      this.#entra.set(backend.authValue, slot);
    }
    const s = slot;
    s.pending = fetchEntraToken(backend).then(
      ({ token, expiresInS }) => {
        s.token = `Bearer ${token}`;
        s.expiresAtMs = Date.now() + expiresInS * 1000;
        s.pending = undefined;
        return s.token;
      },
      (e: unknown) => {
        s.pending = undefined;
        throw e;
      },
    );
    return s.pending;
  }

  /**
   * The `authorization` value of a service-account backend: a self-signed JWT with the cloud-platform
   * scope (google-auth-library, `useJWTAccessWithScope`), cached and renewed by the library; no token
   * endpoint is called.
   */
  async serviceAccountToken(backend: SnapshotBackend): Promise<string> {
    let signer = this.#signers.get(backend.authValue);
    if (signer === undefined) {
      signer = (async () => {
        let key: { client_email?: unknown; private_key?: unknown; private_key_id?: unknown };
        try {
          key = JSON.parse(backend.authValue) as typeof key;
        } catch {
          throw new SluiceError('SLUICE_ERR_UPSTREAM_AUTH', `The service-account key of backend ${backend.id} is not JSON`);
        }
        if (typeof key.client_email !== 'string' || typeof key.private_key !== 'string') throw new SluiceError('SLUICE_ERR_UPSTREAM_AUTH', `The service-account key of backend ${backend.id} has no client_email or private_key`);
        const { JWT } = await import('google-auth-library');
        const jwt = new JWT({ email: key.client_email, key: key.private_key, ...(typeof key.private_key_id === 'string' ? { keyId: key.private_key_id } : {}), scopes: ['https://www.googleapis.com/auth/cloud-platform'] });
        jwt.useJWTAccessWithScope = true;
        return jwt;
      })();
      this.#signers.set(backend.authValue, signer);
      signer.catch(() => this.#signers.delete(backend.authValue));
    }
    try {
      const value = (await (await signer).getRequestHeaders('https://aiplatform.googleapis.com/')).get('authorization');
      if (value === null) throw new Error('no authorization header');
      return value;
    } catch (e) {
      throw e instanceof SluiceError ? e : new SluiceError('SLUICE_ERR_UPSTREAM_AUTH', `Could not sign a token with the service-account key of backend ${backend.id}: ${(e as Error).message}`);
    }
  }
  /** Per backend object (a snapshot's backends live until the next snapshot): no URL parsing per request. */
  readonly #byBackend = new WeakMap<SnapshotBackend, { pool: Pool; pathPrefix: string }>();

  pool(backend: SnapshotBackend): { pool: Pool; pathPrefix: string } {
    const known = this.#byBackend.get(backend);
    if (known !== undefined && !known.pool.destroyed && !known.pool.closed) return known;
    const url = new URL(backend.baseUrl);
    const key = `${url.origin}|${backend.timeouts.connectMs}`;
    let pool = this.#pools.get(key);
    if (pool === undefined) {
      pool = new Pool(url.origin, {
        connections: 256,
        pipelining: 1,
        keepAliveTimeout: 30_000,
        keepAliveMaxTimeout: 120_000,
        connect: { timeout: backend.timeouts.connectMs },
      });
      this.#pools.set(key, pool);
    }
    const entry = { pool, pathPrefix: url.pathname.replace(/\/+$/, '') };
    this.#byBackend.set(backend, entry);
    return entry;
  }

  /** Closes pools no longer used by the given backends. */
  async retain(backends: readonly SnapshotBackend[]): Promise<void> {
    const keep = new Set(backends.map((b) => `${new URL(b.baseUrl).origin}|${b.timeouts.connectMs}`));
    const closing: Array<Promise<void>> = [];
    for (const [key, pool] of this.#pools) {
      if (!keep.has(key)) {
        this.#pools.delete(key);
        closing.push(pool.close());
      }
    }
    await Promise.all(closing);
  }

  async close(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.destroy()));
  }
}

/** One Entra ID token exchange (OAuth 2 client credentials, with a secret or a federated assertion). */
async function fetchEntraToken(backend: SnapshotBackend): Promise<{ token: string; expiresInS: number }> {
  let cfg: { tenantId?: string; clientId?: string; clientSecret?: string; authorityHost?: string; federatedTokenFile?: string };
  try {
    cfg = JSON.parse(backend.authValue) as typeof cfg;
  } catch {
    throw new SluiceError('SLUICE_ERR_UPSTREAM_AUTH', `The Entra ID settings of backend ${backend.id} are not JSON`);
  }
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: cfg.clientId ?? '', scope: 'https://cognitiveservices.azure.com/.default' });
  if (cfg.clientSecret !== undefined && cfg.clientSecret !== '') form.set('client_secret', cfg.clientSecret);
  else if (cfg.federatedTokenFile !== undefined && cfg.federatedTokenFile !== '') {
    let assertion: string;
    try {
      assertion = (await readFile(cfg.federatedTokenFile, 'utf8')).trim();
    } catch (e) {
      throw new SluiceError('SLUICE_ERR_UPSTREAM_AUTH', `Backend ${backend.id}: cannot read the federated token file: ${(e as Error).message}`);
    }
    form.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    form.set('client_assertion', assertion);
  } else throw new SluiceError('SLUICE_ERR_UPSTREAM_AUTH', `Backend ${backend.id} has neither a client secret nor a federated token file for Entra ID`);
  const url = `${cfg.authorityHost ?? 'https://login.microsoftonline.com'}/${encodeURIComponent(cfg.tenantId ?? '')}/oauth2/v2.0/token`;
  let status: number;
  let text: string;
  try {
    const r = await undiciRequest(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString(), headersTimeout: 30_000, bodyTimeout: 30_000 });
    status = r.statusCode;
    text = await r.body.text();
  } catch (e) {
    throw new SluiceError('SLUICE_ERR_UPSTREAM_AUTH', `Backend ${backend.id}: the Entra ID token endpoint cannot be reached: ${(e as Error).message}`);
  }
  let j: { access_token?: unknown; expires_in?: unknown; error_description?: unknown; error?: unknown } = {};
  try {
    j = JSON.parse(text) as typeof j;
  } catch {
    // described below
  }
  if (status !== 200 || typeof j.access_token !== 'string') {
    const why = typeof j.error_description === 'string' ? j.error_description.split('\n')[0] : typeof j.error === 'string' ? j.error : `HTTP ${status}`;
    throw new SluiceError('SLUICE_ERR_UPSTREAM_AUTH', `Backend ${backend.id}: Entra ID refused the token request: ${why}`);
  }
  const expires = Number(j.expires_in);
  return { token: j.access_token, expiresInS: Number.isFinite(expires) && expires > 0 ? expires : 3600 };
}

/** SigV4 headers of a Bedrock request (region after `aws-sigv4/` in the backend's auth type). */
async function awsHeaders(backend: SnapshotBackend, method: string, path: string, headers: Record<string, string>, body: string): Promise<Record<string, string>> {
  const url = new URL(path, backend.baseUrl);
  try {
    awsModule ??= await import('./aws.js');
    const signed = await awsModule.signAws({ secret: backend.authValue, backendId: backend.id, region: backend.authType.slice('aws-sigv4/'.length), service: 'bedrock', method, url, headers, body });
    // The host the signature covers is the one undici sends; nothing else needs to change.
    const { host: _host, ...rest } = signed;
    return rest;
  } catch (e) {
    throw e instanceof SluiceError ? e : new SluiceError('SLUICE_ERR_UPSTREAM_AUTH', `Could not sign the request for backend ${backend.id}: ${(e as Error).message}`);
  }
}

export interface UpstreamRequest {
  readonly backend: SnapshotBackend;
  readonly path: string;
  readonly body: string;
  readonly extraHeaders: Readonly<Record<string, string>> | undefined;
  readonly signal: AbortSignal;
  /** The route's timeouts, when it sets them (else the backend's). */
  readonly firstTokenTimeoutMs?: number;
  readonly idleTimeoutMs?: number;
}

/** Sends one request upstream with the backend's credential; the caller's own credentials never go. */
export async function sendUpstream(pools: UpstreamPools, r: UpstreamRequest): Promise<Dispatcher.ResponseData> {
  const { pool, pathPrefix } = pools.pool(r.backend);
  const headers: Record<string, string> = { ...r.backend.headers, ...r.extraHeaders, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  if (r.backend.authType === 'azure-entra') headers['authorization'] = await pools.entraToken(r.backend);
  else if (r.backend.authType === 'gcp-adc') headers['authorization'] = await pools.adcToken(r.backend);
  else if (r.backend.authType === 'gcp-service-account') headers['authorization'] = await pools.serviceAccountToken(r.backend);
  else if (r.backend.authType.startsWith('aws-sigv4/')) Object.assign(headers, await awsHeaders(r.backend, 'POST', pathPrefix + r.path, headers, r.body));
  else if (r.backend.authHeader !== '') headers[r.backend.authHeader] = r.backend.authValue;
  try {
    return await pool.request({
      method: 'POST',
      path: pathPrefix + r.path,
      headers,
      body: r.body,
      signal: r.signal,
      headersTimeout: r.firstTokenTimeoutMs || r.backend.timeouts.firstByteMs,
      bodyTimeout: r.idleTimeoutMs || r.backend.timeouts.idleMs,
    });
  } catch (e) {
    throw transportError(e, false);
  }
}

/** Maps an undici / socket failure to a stable error. `midBody`: the response had started. */
export function transportError(e: unknown, midBody: boolean): SluiceError {
  if (e instanceof SluiceError) return e;
  if (e instanceof undiciErrors.RequestAbortedError || (e instanceof Error && e.name === 'AbortError')) {
    return new SluiceError('SLUICE_ERR_REQUEST_ABORTED', undefined, { cause: e });
  }
  // AbortSignal.timeout() (control calls: classifiers, embeddings, batches) rejects with a TimeoutError.
  if (e instanceof Error && e.name === 'TimeoutError') return new SluiceError('SLUICE_ERR_UPSTREAM_TIMEOUT', 'The provider did not answer in time', { cause: e });
  if (e instanceof undiciErrors.HeadersTimeoutError) return new SluiceError('SLUICE_ERR_UPSTREAM_TIMEOUT', 'The provider did not start answering in time', { cause: e });
  if (e instanceof undiciErrors.BodyTimeoutError) return new SluiceError('SLUICE_ERR_UPSTREAM_TIMEOUT', 'The provider stopped sending in the middle of its answer', { cause: e });
  if (e instanceof undiciErrors.ConnectTimeoutError) return new SluiceError('SLUICE_ERR_UPSTREAM_CONNECT', 'Timed out connecting to the provider', { cause: e });
  if (midBody) return new SluiceError('SLUICE_ERR_UPSTREAM_STREAM_INTERRUPTED', undefined, { cause: e });
  const code = (e as { code?: unknown } | null)?.code;
  const detail = typeof code === 'string' ? ` (${code})` : '';
  return new SluiceError('SLUICE_ERR_UPSTREAM_CONNECT', `Could not connect to the provider${detail}`, { cause: e });
}

/** Reads a body up to `maxBytes`; beyond it the provider's answer is treated as garbage. */
export function readUpstreamBody(body: Dispatcher.ResponseData['body'], maxBytes: number): Promise<Buffer> {
  // Plain listeners, not an async iterator: this runs once per non-streamed request.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (b: Buffer): void => {
      size += b.length;
      if (size > maxBytes) {
        cleanup();
        body.destroy();
        reject(new SluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE', `Provider response exceeds ${maxBytes} bytes`));
        return;
      }
      chunks.push(b);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onError = (e: unknown): void => {
      cleanup();
      reject(transportError(e, true));
    };
    const onClose = (): void => {
      // Closed without 'end' (destroyed without an error): the answer is incomplete.
      cleanup();
      reject(transportError(new Error('the response body was closed before its end'), true));
    };
    const cleanup = (): void => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      body.off('close', onClose);
    };
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('error', onError);
    body.on('close', onClose);
  });
}

function providerMessage(text: string): string | undefined {
  try {
    const j = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown };
    const m = typeof j.error === 'string' ? j.error : j.error?.message ?? j.message;
    if (typeof m === 'string' && m.length > 0) return m.slice(0, 2000);
  } catch {
    // not JSON: fall through
  }
  return undefined;
}

function providerErrorType(text: string): string | undefined {
  try {
    const j = JSON.parse(text) as { error?: { type?: unknown } };
    return typeof j.error?.type === 'string' ? j.error.type : undefined;
  } catch {
    return undefined;
  }
}

/** An upstream error status as a stable error in the gateway's table, keeping the provider's message. */
export function upstreamStatusError(status: number, headers: Dispatcher.ResponseData['headers'], text: string): SluiceError {
  const msg = providerMessage(text);
  const say = (fallback: string): string => (msg === undefined ? `${fallback} (HTTP ${status})` : `Provider error (HTTP ${status}): ${msg}`);
  if (status === 401 || status === 403) return new SluiceError('SLUICE_ERR_UPSTREAM_AUTH', say('The provider rejected the gateway credentials'));
  if (status === 429) {
    const retryAfter = headers['retry-after'];
    const h = typeof retryAfter === 'string' ? { 'retry-after': retryAfter } : undefined;
    return new SluiceError('SLUICE_ERR_UPSTREAM_RATE_LIMITED', say('The provider is rate limiting'), h === undefined ? {} : { headers: h });
  }
  if (status === 529 || providerErrorType(text) === 'overloaded_error') return new SluiceError('SLUICE_ERR_UPSTREAM_OVERLOADED', say('The provider is overloaded'));
  if (status >= 400 && status < 500) return new SluiceError('SLUICE_ERR_UPSTREAM_CLIENT_ERROR', say('The provider rejected the request'), { status });
  return new SluiceError('SLUICE_ERR_UPSTREAM_SERVER_ERROR', say('The provider failed'));
}

export interface UpstreamCall {
  readonly method: 'GET' | 'POST';
  /** Path under the backend's base URL. */
  readonly path: string;
  readonly body?: string;
  /** Content type of the body (default application/json). */
  readonly contentType?: string;
  readonly timeoutMs: number;
  /** Largest answer read. */
  readonly maxBytes: number;
}

/**
 * A whole request/answer exchange with a backend, for control calls (the batch API): the backend's
 * credential and headers, the answer read to the end. Throws SluiceError on transport failures.
 */
export async function callUpstream(pools: UpstreamPools, backend: SnapshotBackend, c: UpstreamCall): Promise<{ status: number; text: string }> {
  const { pool, pathPrefix } = pools.pool(backend);
  const headers: Record<string, string> = { ...backend.headers, accept: 'application/json' };
  if (c.body !== undefined) headers['content-type'] = c.contentType ?? 'application/json';
  if (backend.authType === 'azure-entra') headers['authorization'] = await pools.entraToken(backend);
  else if (backend.authType === 'gcp-adc') headers['authorization'] = await pools.adcToken(backend);
  else if (backend.authType === 'gcp-service-account') headers['authorization'] = await pools.serviceAccountToken(backend);
  else if (backend.authType.startsWith('aws-sigv4/')) Object.assign(headers, await awsHeaders(backend, c.method, pathPrefix + c.path, headers, c.body ?? ''));
  else if (backend.authHeader !== '') headers[backend.authHeader] = backend.authValue;
  let res: Dispatcher.ResponseData;
  try {
    res = await pool.request({ method: c.method, path: pathPrefix + c.path, headers, body: c.body, signal: AbortSignal.timeout(c.timeoutMs), headersTimeout: c.timeoutMs, bodyTimeout: c.timeoutMs });
  } catch (e) {
    throw transportError(e, false);
  }
  const buf = await readUpstreamBody(res.body, c.maxBytes);
  return { status: res.statusCode, text: buf.toString('utf8') };
}
