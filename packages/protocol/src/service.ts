import * as grpc from '@grpc/grpc-js';
import { sluice } from '#gen/sluice.js';

import v1 = sluice.v1;

/** Generated message class, as far as (de)serialization needs it. */
interface Codec<In, Out> {
  encode(message: In): { finish(): Uint8Array };
  decode(buffer: Uint8Array): Out;
}

/**
 * One bidirectional-streaming method of `sluice.v1.Control`. Writers take the generated
 * `$Properties` shape (a message instance or a plain object of the same shape); readers get
 * decoded message instances.
 */
export interface BidiMethodDefinition<ReqIn, Req extends ReqIn, ResIn, Res extends ResIn> extends grpc.MethodDefinition<ReqIn, Res> {
  readonly path: string;
  readonly requestStream: true;
  readonly responseStream: true;
  readonly originalName: string;
  readonly requestSerialize: (value: ReqIn) => Buffer;
  readonly requestDeserialize: (bytes: Buffer) => Req;
  readonly responseSerialize: (value: ResIn) => Buffer;
  readonly responseDeserialize: (bytes: Buffer) => Res;
}

/**
 * Encodes a message; bytes that are already encoded (a `Uint8Array`, see `preEncoded`) pass through,
 * so a server can encode a large shared part once and send it on many streams.
 */
function serializer<In>(type: Codec<In, unknown>): (value: In) => Buffer {
  return (value) => {
    if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    const bytes = type.encode(value).finish();
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer<Out>(type: Codec<never, Out>): (bytes: Buffer) => Out {
  return (bytes) => type.decode(bytes);
}

function bidi<ReqIn, Req extends ReqIn, ResIn, Res extends ResIn>(
  name: string,
  request: Codec<ReqIn, Req>,
  response: Codec<ResIn, Res>,
): BidiMethodDefinition<ReqIn, Req, ResIn, Res> {
  return {
    path: `/sluice.v1.Control/${name}`,
    requestStream: true,
    responseStream: true,
    originalName: name,
    requestSerialize: serializer(request),
    requestDeserialize: deserializer(request),
    responseSerialize: serializer(response),
    responseDeserialize: deserializer(response),
  };
}

/**
 * `sluice.v1.Control` for @grpc/grpc-js: pass to `server.addService(ControlService, handlers)`.
 * Methods are keyed in camelCase (`streamPolicy`); the proto names (`StreamPolicy`) are set as
 * `originalName`, so grpc-js accepts either spelling for handlers and client methods.
 */
export const ControlService = {
  streamPolicy: bidi<v1.PolicyRequest.$Properties, v1.PolicyRequest, v1.PolicyResponse.$Properties, v1.PolicyResponse>(
    'StreamPolicy',
    v1.PolicyRequest,
    v1.PolicyResponse,
  ),
  streamQuota: bidi<v1.QuotaRequest.$Properties, v1.QuotaRequest, v1.QuotaResponse.$Properties, v1.QuotaResponse>(
    'StreamQuota',
    v1.QuotaRequest,
    v1.QuotaResponse,
  ),
  streamUsage: bidi<v1.UsageBatch.$Properties, v1.UsageBatch, v1.UsageAck.$Properties, v1.UsageAck>(
    'StreamUsage',
    v1.UsageBatch,
    v1.UsageAck,
  ),
} as const satisfies grpc.ServiceDefinition<ControlServer>;

/** Fully qualified service name. */
export const CONTROL_SERVICE_NAME = 'sluice.v1.Control';

/**
 * Server handlers for `server.addService(ControlService, handlers)`: the server reads decoded
 * requests and writes responses as message instances or plain `$Properties` objects.
 */
export interface ControlServer extends grpc.UntypedServiceImplementation {
  streamPolicy: grpc.handleBidiStreamingCall<v1.PolicyRequest, v1.PolicyResponse.$Properties>;
  streamQuota: grpc.handleBidiStreamingCall<v1.QuotaRequest, v1.QuotaResponse.$Properties>;
  streamUsage: grpc.handleBidiStreamingCall<v1.UsageBatch, v1.UsageAck.$Properties>;
}

/** Duplex call of one Control method, as the client sees it. */
export type ControlCall<ReqIn, Res> = grpc.ClientDuplexStream<ReqIn, Res>;

/** A connected `sluice.v1.Control` client (construct with `new ControlClient(address, credentials)`). */
export interface ControlClient extends grpc.Client {
  streamPolicy(metadata?: grpc.Metadata, options?: grpc.CallOptions): ControlCall<v1.PolicyRequest.$Properties, v1.PolicyResponse>;
  streamPolicy(options?: grpc.CallOptions): ControlCall<v1.PolicyRequest.$Properties, v1.PolicyResponse>;
  streamQuota(metadata?: grpc.Metadata, options?: grpc.CallOptions): ControlCall<v1.QuotaRequest.$Properties, v1.QuotaResponse>;
  streamQuota(options?: grpc.CallOptions): ControlCall<v1.QuotaRequest.$Properties, v1.QuotaResponse>;
  streamUsage(metadata?: grpc.Metadata, options?: grpc.CallOptions): ControlCall<v1.UsageBatch.$Properties, v1.UsageAck>;
  streamUsage(options?: grpc.CallOptions): ControlCall<v1.UsageBatch.$Properties, v1.UsageAck>;
}

export interface ControlClientConstructor {
  new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ClientOptions): ControlClient;
  readonly service: typeof ControlService;
  readonly serviceName: string;
}

/** Client class for `sluice.v1.Control` (grpc-js generic client over {@link ControlService}). */
export const ControlClient = grpc.makeGenericClientConstructor(ControlService, 'Control') as unknown as ControlClientConstructor;

/**
 * Marks already-encoded message bytes for `call.write()`: the service's serializers pass them
 * through unchanged. Protobuf messages concatenate, so `encode({version, nonce})` followed by a
 * cached `encode({snapshot})` is one valid PolicyResponse.
 */
export function preEncoded<T>(bytes: Uint8Array): T {
  return bytes as unknown as T;
}
