/**
 * The fake provider's AWS Bedrock Converse pieces: SigV4 verification of incoming requests (the
 * signature recomputed with the AWS signing library from the request as received) and the
 * event-stream frames of ConverseStream (encoded with the AWS event-stream codec).
 */
import { Sha256 } from '@aws-crypto/sha256-js';
import { EventStreamCodec } from '@smithy/core/event-streams';
import { SignatureV4 } from '@smithy/signature-v4';
import { fromUtf8, toUtf8 } from '@smithy/util-utf8';
import type { IncomingMessage } from 'node:http';

export interface FakeAwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

const codec = new EventStreamCodec(toUtf8, fromUtf8);

/** One ConverseStream frame. */
export function eventFrame(eventType: string, payload: unknown): Buffer {
  return Buffer.from(
    codec.encode({
      headers: { ':message-type': { type: 'string', value: 'event' }, ':event-type': { type: 'string', value: eventType }, ':content-type': { type: 'string', value: 'application/json' } },
      body: fromUtf8(JSON.stringify(payload)),
    }),
  );
}

/** An exception frame (e.g. throttlingException) in the middle of a stream. */
export function exceptionFrame(type: string, message: string): Buffer {
  return Buffer.from(
    codec.encode({
      headers: { ':message-type': { type: 'string', value: 'exception' }, ':exception-type': { type: 'string', value: type }, ':content-type': { type: 'string', value: 'application/json' } },
      body: fromUtf8(JSON.stringify({ message })),
    }),
  );
}

/**
 * Why the request's SigV4 signature is refused (undefined = valid): the signature is recomputed
 * from the method, raw path, the signed headers and the body, at the request's x-amz-date.
 */
export async function checkSigV4(req: IncomingMessage, body: string, creds: FakeAwsCredentials, region: string): Promise<string | undefined> {
  const auth = String(req.headers['authorization'] ?? '');
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/u.exec(auth);
  if (m === null) return 'no SigV4 authorization header';
  if (m[1] !== creds.accessKeyId) return 'unknown access key';
  if (m[3] !== region || m[4] !== 'bedrock') return `signed for ${m[3] ?? ''}/${m[4] ?? ''}`;
  const amzDate = String(req.headers['x-amz-date'] ?? '');
  const d = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/u.exec(amzDate);
  if (d === null) return 'no x-amz-date';
  const date = new Date(Date.UTC(Number(d[1]), Number(d[2]) - 1, Number(d[3]), Number(d[4]), Number(d[5]), Number(d[6])));
  if (Math.abs(Date.now() - date.getTime()) > 5 * 60_000) return 'x-amz-date too far from now';
  const signed = (m[5] as string).split(';');
  const headers: Record<string, string> = {};
  for (const name of signed) if (name !== 'x-amz-date') headers[name] = String(req.headers[name] ?? '');
  const url = new URL(req.url ?? '/', `http://${String(req.headers['host'] ?? 'localhost')}`);
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = v;
  const signer = new SignatureV4({ credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey }, region, service: 'bedrock', sha256: Sha256 });
  const expected = await signer.sign({ method: req.method ?? 'POST', protocol: 'http:', hostname: url.hostname, path: url.pathname, query, headers, body }, { signingDate: date });
  return expected.headers['authorization'] === auth ? undefined : 'bad signature';
}
