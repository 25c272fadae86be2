/**
 * The baseline: the least a Node reverse proxy can do. A `node:http` server that forwards each
 * request to one upstream with `http.request` over a keep-alive agent and pipes the answer back
 * (status, headers, body). No parsing, no logging.
 *
 *   node bare-proxy.js --upstream http://127.0.0.1:PORT [--port 0] [--host 127.0.0.1]
 *
 * Prints `bare-proxy: listening on http://HOST:PORT` on stdout when ready. Exits on SIGTERM /
 * SIGINT or when its stdin closes.
 */
import { Agent, createServer, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    upstream: { type: 'string' },
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
  },
});
if (values.upstream === undefined) {
  process.stderr.write('usage: bare-proxy.js --upstream http://HOST:PORT [--port N]\n');
  process.exit(2);
}
const upstream = new URL(values.upstream);
const agent = new Agent({ keepAlive: true, maxSockets: 256 });

/** Hop-by-hop headers belong to one connection, not to the message. */
function stripHopByHop(h: IncomingHttpHeaders): IncomingHttpHeaders {
  delete h['connection'];
  delete h['keep-alive'];
  return h;
}

function onRequest(req: IncomingMessage, res: ServerResponse): void {
  const up = request(
    {
      agent,
      hostname: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: stripHopByHop(req.headers),
    },
    (ur) => {
      res.writeHead(ur.statusCode ?? 502, stripHopByHop(ur.headers));
      ur.pipe(res);
      ur.on('error', () => res.destroy());
    },
  );
  up.on('error', () => {
    if (!res.headersSent) {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('bad gateway');
    } else {
      res.destroy();
    }
  });
  res.on('close', () => {
    if (!res.writableFinished) up.destroy();
  });
  req.pipe(up);
}

const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, onRequest);
server.listen(Number(values.port), values.host, () => {
  const a = server.address() as AddressInfo;
  process.stdout.write(`bare-proxy: listening on http://${values.host}:${a.port}\n`);
});

let stopping = false;
const stop = (code: number): void => {
  if (stopping) return;
  stopping = true;
  server.close(() => process.exit(code));
  server.closeAllConnections();
  agent.destroy();
  setTimeout(() => process.exit(code), 2000).unref();
};
process.on('SIGTERM', () => stop(0));
process.on('SIGINT', () => stop(0));
process.stdin.on('end', () => stop(1));
process.stdin.on('error', () => stop(1));
process.stdin.resume();
