import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { sluice } from '#gen/sluice.js';
import { fromWire, toWire } from './convert.js';
import { ControlClient, ControlService, type ControlServer } from './service.js';
import { sampleSnapshot } from '../test/sample-snapshot.js';

const { Snapshot } = sluice.v1;

function listen(server: grpc.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
  });
}

function shutdown(server: grpc.Server): Promise<void> {
  return new Promise((resolve) => server.tryShutdown(() => resolve()));
}

test('the service definition drives a real grpc-js server and client (StreamPolicy + StreamUsage)', async (t) => {
  const received: sluice.v1.PolicyRequest[] = [];
  const handlers: ControlServer = {
    streamPolicy(call) {
      call.on('data', (req: sluice.v1.PolicyRequest) => {
        received.push(req);
        if (req.responseNonce === '') {
          // First request of the stream: push the snapshot for this node.
          call.write({ version: 'v1', nonce: 'n-1', snapshot: toWire(Snapshot, sampleSnapshot()), compileErrors: [] });
        } else {
          // The ACK (or NACK) of our push: nothing more to send.
          call.end();
        }
      });
      call.on('error', () => {});
    },
    streamQuota(call) {
      call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'not in this test' });
    },
    streamUsage(call) {
      call.on('data', (batch: sluice.v1.UsageBatch) => call.write({ reporterEpoch: batch.reporterEpoch, seq: batch.seq }));
      call.on('end', () => call.end());
    },
  };
  const server = new grpc.Server();
  server.addService(ControlService, handlers);
  const port = await listen(server);
  const client = new ControlClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  t.after(async () => {
    client.close();
    await shutdown(server);
  });

  // --- StreamPolicy: hello → snapshot → ACK ---
  const node = {
    pod: 'app-7d9f-abcde',
    namespace: 'default',
    serviceAccount: 'app',
    labels: { team: 'search', 'app.kubernetes.io/name': 'app' },
    instanceId: 'c0ffee',
    sidecarVersion: '0.1.0',
  };
  const responses = await new Promise<sluice.v1.PolicyResponse[]>((resolve, reject) => {
    const got: sluice.v1.PolicyResponse[] = [];
    const call = client.streamPolicy();
    call.on('data', (res: sluice.v1.PolicyResponse) => {
      got.push(res);
      call.write({ versionInfo: res.version, responseNonce: res.nonce }); // ACK
    });
    call.on('error', reject);
    call.on('end', () => {
      call.end();
      resolve(got);
    });
    call.write({ node, versionInfo: '', responseNonce: '' });
  });

  assert.equal(responses.length, 1);
  const [res] = responses;
  assert.ok(res instanceof sluice.v1.PolicyResponse);
  assert.equal(res.version, 'v1');
  assert.equal(res.nonce, 'n-1');
  assert.ok(res.snapshot);
  assert.deepStrictEqual(fromWire(Snapshot, res.snapshot), sampleSnapshot());

  assert.equal(received.length, 2);
  const [hello, ack] = received;
  assert.ok(hello instanceof sluice.v1.PolicyRequest && ack instanceof sluice.v1.PolicyRequest);
  assert.deepStrictEqual(fromWire(sluice.v1.PolicyRequest, hello), {
    node,
    versionInfo: '',
    responseNonce: '',
    errorDetail: null,
  });
  assert.deepStrictEqual(fromWire(sluice.v1.PolicyRequest, ack), {
    node: null,
    versionInfo: 'v1',
    responseNonce: 'n-1',
    errorDetail: null,
  });

  // --- StreamUsage: uint64 seq crosses both directions ---
  const acks = await new Promise<sluice.v1.UsageAck[]>((resolve, reject) => {
    const got: sluice.v1.UsageAck[] = [];
    const call = client.streamUsage();
    call.on('data', (a: sluice.v1.UsageAck) => got.push(a));
    call.on('error', reject);
    call.on('end', () => resolve(got));
    call.write({ reporterEpoch: 'epoch-1', seq: 1, records: [{ minuteUnix: 1_763_900_000, requests: 3, costMicros: 12_345 }] });
    call.write({ reporterEpoch: 'epoch-1', seq: 2, records: [] });
    call.end();
  });
  assert.deepStrictEqual(
    acks.map((a) => fromWire(sluice.v1.UsageAck, a)),
    [
      { reporterEpoch: 'epoch-1', seq: 1, duplicate: false },
      { reporterEpoch: 'epoch-1', seq: 2, duplicate: false },
    ],
  );

  // --- StreamQuota: the handler is wired (it answers UNIMPLEMENTED on purpose) ---
  const quotaError = await new Promise<grpc.ServiceError>((resolve) => {
    const call = client.streamQuota();
    call.on('error', resolve);
    call.on('data', () => {});
    call.write({ hello: node });
  });
  assert.equal(quotaError.code, grpc.status.UNIMPLEMENTED);
  assert.equal(quotaError.details, 'not in this test');
});

test('ControlService describes the three bidi streams of sluice.v1.Control', () => {
  assert.deepStrictEqual(
    Object.entries(ControlService).map(([key, m]) => [key, m.path, m.originalName, m.requestStream, m.responseStream]),
    [
      ['streamPolicy', '/sluice.v1.Control/StreamPolicy', 'StreamPolicy', true, true],
      ['streamQuota', '/sluice.v1.Control/StreamQuota', 'StreamQuota', true, true],
      ['streamUsage', '/sluice.v1.Control/StreamUsage', 'StreamUsage', true, true],
    ],
  );
  const bytes = ControlService.streamPolicy.requestSerialize({ versionInfo: 'v9', responseNonce: 'n' });
  assert.ok(Buffer.isBuffer(bytes));
  const decoded = ControlService.streamPolicy.requestDeserialize(bytes);
  assert.ok(decoded instanceof sluice.v1.PolicyRequest);
  assert.equal(decoded.versionInfo, 'v9');
  assert.equal(ControlClient.serviceName, 'Control');
  const client = new ControlClient('127.0.0.1:1', grpc.credentials.createInsecure());
  assert.equal(typeof client.streamPolicy, 'function');
  assert.equal(typeof client.streamQuota, 'function');
  assert.equal(typeof client.streamUsage, 'function');
  client.close();
});
