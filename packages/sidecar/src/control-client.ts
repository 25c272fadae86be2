import { readFileSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '@sluice/core';
import type { Snapshot, SnapshotProblem } from '@sluice/policy';
import { ControlClient, fromWire, sluice, type ControlCall } from '@sluice/protocol';

import v1 = sluice.v1;

export interface NodeIdentity {
  readonly pod: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly instanceId: string;
  readonly sidecarVersion: string;
}

export interface PolicyClientOptions {
  /** Control plane gRPC address, `host:port`. */
  readonly address: string;
  readonly node: NodeIdentity;
  /** Swaps a snapshot in; returns the problems that made it refuse (empty = applied). */
  readonly apply: (s: Snapshot) => SnapshotProblem[];
  /** Version currently served ('' = none). */
  readonly currentVersion: () => string;
  readonly logger: Logger;
  /** Directory for the last good snapshot (restarts while the control plane is away); none = memory only. */
  readonly stateDir?: string | undefined;
  /** TLS to the control plane: the CA that signed its certificate (PEM file). Unset = plaintext (loopback only). */
  readonly caFile?: string | undefined;
  /** The CA inline (PEM); wins over `caFile`. */
  readonly caPem?: string | undefined;
  /** Projected service account token, re-read for every stream (rotation), sent as a bearer token. Needs TLS. */
  readonly tokenFile?: string | undefined;
  /** Expected server name in the control plane's certificate, if it differs from the address host. */
  readonly serverName?: string | undefined;
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
}

const SNAPSHOT_FILE = 'snapshot.json';

/**
 * TLS with the control plane's CA and, when a token file is given, the token as per-call
 * credentials: grpc-js calls the generator for every stream, so a rotated token is picked up.
 */
function channelCredentials(o: PolicyClientOptions): grpc.ChannelCredentials {
  const ca = o.caPem !== undefined ? Buffer.from(o.caPem) : o.caFile !== undefined ? readFileSync(o.caFile) : undefined;
  if (ca === undefined) {
    if (o.tokenFile !== undefined) throw new Error('a token needs TLS: set the control plane CA');
    return grpc.credentials.createInsecure();
  }
  const ssl = grpc.credentials.createSsl(ca);
  if (o.tokenFile === undefined) return ssl;
  const tokenFile = o.tokenFile;
  const token = grpc.credentials.createFromMetadataGenerator((_params, callback) => {
    readFile(tokenFile, 'utf8').then(
      (t) => {
        const md = new grpc.Metadata();
        md.set('authorization', `Bearer ${t.trim()}`);
        callback(null, md);
      },
      (e: Error) => callback(e),
    );
  });
  return grpc.credentials.combineChannelCredentials(ssl, token);
}

/**
 * The sidecar end of StreamPolicy: connects, announces its identity and the version it runs,
 * applies each snapshot (ACK) or refuses it (NACK, last good kept), persists the last good snapshot,
 * and reconnects with jittered exponential backoff.
 */
export class PolicyClient {
  readonly #o: PolicyClientOptions;
  readonly #client: ControlClient;
  #call: ControlCall<v1.PolicyRequest.$Properties, v1.PolicyResponse> | undefined;
  #attempt = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #connected = false;
  readonly #listeners = new Set<(e: { type: 'ack' | 'nack'; version: string }) => void>();

  constructor(o: PolicyClientOptions) {
    this.#o = o;
    this.#client = new ControlClient(o.address, channelCredentials(o), {
      ...(o.serverName === undefined ? {} : { 'grpc.ssl_target_name_override': o.serverName, 'grpc.default_authority': o.serverName }),
      'grpc.keepalive_time_ms': 30_000,
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': o.backoffMaxMs ?? 10_000,
    });
  }

  /** Loads the last good snapshot from disk (if any), then connects. */
  async start(): Promise<void> {
    await this.#loadFromDisk();
    this.#connect();
  }

  /** The gRPC client (one HTTP/2 connection to the control plane), shared with the quota stream. */
  get controlClient(): ControlClient {
    return this.#client;
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** Listener for every applied (ack) or refused (nack) snapshot. */
  onSnapshot(listener: (e: { type: 'ack' | 'nack'; version: string }) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async #loadFromDisk(): Promise<void> {
    if (this.#o.stateDir === undefined) return;
    let text: string;
    try {
      text = await readFile(join(this.#o.stateDir, SNAPSHOT_FILE), 'utf8');
    } catch {
      return;
    }
    try {
      const s = JSON.parse(text) as Snapshot;
      const problems = this.#o.apply(s);
      if (problems.length === 0) this.#o.logger.info({ version: s.version }, 'serving the last good snapshot from disk until the control plane answers');
      else this.#o.logger.warn({ problems }, 'snapshot on disk refused');
    } catch (e) {
      this.#o.logger.warn({ err: (e as Error).message }, 'snapshot on disk unreadable');
    }
  }

  async #persist(s: Snapshot): Promise<void> {
    const dir = this.#o.stateDir;
    if (dir === undefined) return;
    try {
      await mkdir(dir, { recursive: true });
      const tmp = join(dir, `${SNAPSHOT_FILE}.${process.pid}.tmp`);
      await writeFile(tmp, JSON.stringify(s), { mode: 0o600 });
      await rename(tmp, join(dir, SNAPSHOT_FILE));
    } catch (e) {
      this.#o.logger.warn({ err: (e as Error).message, dir }, 'could not persist the snapshot');
    }
  }

  #connect(): void {
    if (this.#closed) return;
    const call = this.#client.streamPolicy();
    this.#call = call;
    const n = this.#o.node;
    call.write({
      node: { pod: n.pod, namespace: n.namespace, serviceAccount: n.serviceAccount, labels: { ...n.labels }, instanceId: n.instanceId, sidecarVersion: n.sidecarVersion },
      versionInfo: this.#o.currentVersion(),
      responseNonce: '',
    });
    call.on('data', (res: v1.PolicyResponse) => {
      this.#attempt = 0;
      this.#connected = true;
      this.#onResponse(call, res);
    });
    const lost = (why: string): void => {
      if (this.#call !== call) return;
      this.#call = undefined;
      this.#connected = false;
      this.#scheduleReconnect(why);
    };
    call.on('error', (e: Error) => lost(e.message));
    call.on('end', () => lost('stream ended'));
  }

  #onResponse(call: ControlCall<v1.PolicyRequest.$Properties, v1.PolicyResponse>, res: v1.PolicyResponse): void {
    let problems: SnapshotProblem[];
    let snapshot: Snapshot | undefined;
    try {
      if (res.snapshot === null || res.snapshot === undefined) throw new Error('response without a snapshot');
      snapshot = fromWire<Snapshot>(v1.Snapshot, res.snapshot);
      if (snapshot.version !== res.version) throw new Error(`version ${res.version} does not match the snapshot's ${snapshot.version}`);
      problems = this.#o.apply(snapshot);
    } catch (e) {
      problems = [{ resource: `snapshot ${res.version}`, code: 'SLUICE_ERR_POLICY_REJECTED', message: (e as Error).message }];
    }
    if (problems.length === 0 && snapshot !== undefined) {
      // Persist first, so an ACKed snapshot survives a restart while the control plane is away.
      void this.#persist(snapshot).then(() => {
        call.write({ versionInfo: res.version, responseNonce: res.nonce });
        for (const l of this.#listeners) l({ type: 'ack', version: res.version });
      });
      return;
    }
    const message = problems.map((p) => `${p.resource}: ${p.message}`).join('; ');
    this.#o.logger.warn({ version: res.version, problems }, 'snapshot refused; the last good one keeps serving');
    call.write({ versionInfo: this.#o.currentVersion(), responseNonce: res.nonce, errorDetail: { message, resources: problems } });
    for (const l of this.#listeners) l({ type: 'nack', version: res.version });
  }

  #scheduleReconnect(why: string): void {
    if (this.#closed) return;
    const initial = this.#o.backoffInitialMs ?? 100;
    const max = this.#o.backoffMaxMs ?? 10_000;
    const ceiling = Math.min(max, initial * 2 ** Math.min(this.#attempt, 20));
    const delay = Math.round(Math.random() * ceiling); // full jitter
    this.#attempt++;
    this.#o.logger.warn({ why, retryInMs: delay, attempt: this.#attempt }, 'control plane stream lost; reconnecting');
    this.#timer = setTimeout(() => this.#connect(), delay);
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#call?.cancel();
    this.#client.close();
  }
}
