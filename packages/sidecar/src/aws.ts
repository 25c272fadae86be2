import { Sha256 } from '@aws-crypto/sha256-js';
import { EventStreamCodec } from '@smithy/core/event-streams';
import { SignatureV4 } from '@smithy/signature-v4';
import { fromUtf8, toUtf8 } from '@smithy/util-utf8';
import { fromTokenFile } from '@aws-sdk/credential-provider-web-identity';
import { SluiceError } from '@sluice/core';
import type { SseEvent, SseParser } from '@sluice/providers';

/**
 * AWS for Bedrock, through the AWS libraries: SigV4 request signing (@smithy/signature-v4) and the
 * `application/vnd.amazon.eventstream` framing of ConverseStream (@smithy/core's event-stream codec).
 */

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

/** Credentials from assuming an IAM role with the pod's web identity token (IRSA), cached until 5 minutes before they expire. */
function webIdentityCredentials(w: { roleArn: string; tokenFile: string; stsEndpoint: string }, region: string, backendId: string): () => Promise<AwsCredentials> {
  let cached: { creds: AwsCredentials; expiresAtMs: number } | undefined;
  let pending: Promise<AwsCredentials> | undefined;
  const provider = fromTokenFile({ webIdentityTokenFile: w.tokenFile, roleArn: w.roleArn, roleSessionName: `sluice-${backendId.replace(/[^\w+=,.@-]/gu, '-')}`.slice(0, 64), clientConfig: { endpoint: w.stsEndpoint, region } });
  return async () => {
    if (cached !== undefined && cached.expiresAtMs - 300_000 > Date.now()) return cached.creds;
    pending ??= provider()
      .then((c) => {
        const creds = { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, ...(c.sessionToken === undefined ? {} : { sessionToken: c.sessionToken }) };
        cached = { creds, expiresAtMs: c.expiration?.getTime() ?? Date.now() + 3_600_000 };
        return creds;
      })
      .catch((e: unknown) => {
        throw new SluiceError('SLUICE_ERR_UPSTREAM_AUTH', `Backend ${backendId}: assuming ${w.roleArn} with the web identity token failed: ${(e as Error).message}`);
      })
      .finally(() => {
        pending = undefined;
      });
    return pending;
  };
}

/** The credentials in a Bedrock backend's Secret: JSON `{accessKeyId, secretAccessKey, sessionToken?}`. */
export function parseAwsCredentials(secret: string, backendId: string): AwsCredentials {
  let v: unknown;
  try {
    v = JSON.parse(secret);
  } catch {
    throw new SluiceError('SLUICE_ERR_UPSTREAM_AUTH', `The AWS credentials of backend ${backendId} are not JSON`);
  }
  const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  if (typeof o['accessKeyId'] !== 'string' || typeof o['secretAccessKey'] !== 'string') throw new SluiceError('SLUICE_ERR_UPSTREAM_AUTH', `The AWS credentials of backend ${backendId} need accessKeyId and secretAccessKey`);
  return { accessKeyId: o['accessKeyId'], secretAccessKey: o['secretAccessKey'], ...(typeof o['sessionToken'] === 'string' ? { sessionToken: o['sessionToken'] } : {}) };
}

const signers = new Map<string, SignatureV4>();

/** SigV4 headers (authorization, x-amz-date, x-amz-content-sha256, x-amz-security-token) for one request. */
export async function signAws(input: { secret: string; backendId: string; region: string; service: string; method: string; url: URL; headers: Record<string, string>; body: string }): Promise<Record<string, string>> {
  const cacheKey = `${input.region}\u0000${input.service}\u0000${input.secret}`;
  let signer = signers.get(cacheKey);
  if (signer === undefined) {
    let web: { webIdentity?: { roleArn: string; tokenFile: string; stsEndpoint: string } } = {};
    try {
      web = JSON.parse(input.secret) as typeof web;
    } catch {
      // parseAwsCredentials reports it
    }
    const credentials = web.webIdentity !== undefined ? webIdentityCredentials(web.webIdentity, input.region, input.backendId) : parseAwsCredentials(input.secret, input.backendId);
    signer = new SignatureV4({ credentials, region: input.region, service: input.service, sha256: Sha256 });
    if (signers.size > 256) signers.clear();
    signers.set(cacheKey, signer);
  }
  const query: Record<string, string> = {};
  for (const [k, v] of input.url.searchParams) query[k] = v;
  const signed = await signer.sign({ method: input.method, protocol: input.url.protocol, hostname: input.url.hostname, port: input.url.port === '' ? undefined : Number(input.url.port), path: input.url.pathname, query, headers: { ...input.headers, host: input.url.host }, body: input.body });
  return signed.headers;
}

/**
 * Parses AWS event-stream frames into events: `event` is the frame's `:event-type`, or
 * `exception:<:exception-type>` for an exception frame; `data` is its payload (JSON text). CRCs are
 * checked by the codec; a damaged frame is a bad response.
 */
export function createAwsEventStreamParser(maxFrameBytes = 16 * 1024 * 1024): SseParser {
  const codec = new EventStreamCodec(toUtf8, fromUtf8);
  let pending: Buffer = Buffer.alloc(0);
  const frames = (): SseEvent[] => {
    const out: SseEvent[] = [];
    while (pending.length >= 4) {
      const total = pending.readUInt32BE(0);
      if (total < 16 || total > maxFrameBytes) throw new SluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE', `Upstream event-stream frame of ${total} bytes`);
      if (pending.length < total) break;
      const frame = pending.subarray(0, total);
      pending = pending.subarray(total);
      let message;
      try {
        message = codec.decode(frame);
      } catch (e) {
        throw new SluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE', `Upstream event-stream frame is damaged: ${(e as Error).message}`);
      }
      const h = (name: string): string | undefined => {
        const v = message.headers[name];
        return v !== undefined && v.type === 'string' ? v.value : undefined;
      };
      const kind = h(':message-type');
      const event = kind === 'exception' || kind === 'error' ? `exception:${h(':exception-type') ?? h(':error-code') ?? 'unknown'}` : (h(':event-type') ?? '');
      const data = Buffer.from(message.body).toString('utf8');
      out.push({ event, data: data === '' ? '{}' : data, raw: '' });
    }
    return out;
  };
  return {
    push(chunk: Uint8Array | string): SseEvent[] {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      pending = pending.length === 0 ? b : Buffer.concat([pending, b]);
      return frames();
    },
    get pendingLength() {
      return pending.length;
    },
    end(): SseEvent[] {
      const out = frames();
      if (pending.length > 0) throw new SluiceError('SLUICE_ERR_UPSTREAM_STREAM_INTERRUPTED', 'The provider stream ended in the middle of an event-stream frame');
      return out;
    },
  };
}
