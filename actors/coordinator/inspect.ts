/**
 * SCALAR_INSPECT=1: stream the coordinator's live actors (its job and node
 * actors) to the Stately inspector in a browser.
 *
 * Scalar runs its own bridge rather than @statelyai/inspect's server, which
 * listens on every interface, lets anyone connect, and relays whatever any
 * client sends to every other client. Here:
 * - it listens on SCALAR_INSPECT_HOST, 127.0.0.1 unless an operator names
 *   another address, and then the config demands SCALAR_INSPECT_TOKEN;
 * - with a token, the page and every viewer's WebSocket must present it
 *   (`?token=`, compared in constant time); without one, only loopback can reach it;
 * - only this process publishes: the coordinator's inspector connects with a
 *   key made at start that never leaves the process, and what viewers send is
 *   dropped, so nobody can inject events into another viewer's picture;
 * - a viewer frame over 4 KiB closes that viewer (viewers have nothing to say).
 * Who may use it: an operator on the coordinator's host, or one who holds the token.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import type { Inspect } from './live.ts';

export interface InspectionOptions {
  port: number;
  host: string;
  /** Required by the config for any host but loopback. */
  token?: string;
  /** Where the page loads the inspector UI from. */
  inspectorUrl?: string;
}

export interface Inspection {
  inspect: Inspect;
  /** The page to open (with the token when there is one). */
  url: string;
  /** Where the bridge listens. */
  address: AddressInfo;
  stop(): Promise<void>;
}

/** Events kept for a viewer who connects late. */
const BUFFER = 200;
const VIEWER_MAX_FRAME = 4096;

function sameSecret(given: string | null, expected: string): boolean {
  if (given === null) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export async function startInspection(o: InspectionOptions, log: Logger): Promise<Inspection> {
  // Loaded only when inspection is on: a coordinator without it carries neither ws nor the inspector.
  const { WebSocket: WS, WebSocketServer } = await import('ws');
  const producerKey = randomBytes(24).toString('base64url');
  const inspectorUrl = o.inspectorUrl ?? 'https://stately.ai/inspect';
  const allowed = (url: URL): boolean => o.token === undefined || sameSecret(url.searchParams.get('token'), o.token);

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://bridge');
    if (url.pathname !== '/') return void res.writeHead(404).end();
    if (!allowed(url)) return void res.writeHead(401, { 'content-type': 'text/plain' }).end('a token is required: open the URL the coordinator logged\n');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' });
    res.end(bridgePage(inspectorUrl));
  });
  const wss = new WebSocketServer({
    server,
    maxPayload: 1024 * 1024,
    verifyClient: ({ req }, done) => {
      const url = new URL(req.url ?? '/', 'http://bridge');
      if (url.pathname === '/producer') return done(sameSecret(url.searchParams.get('key'), producerKey), 401);
      done(url.pathname === '/' && allowed(url), 401);
    },
  });
  const buffer: string[] = [];
  const viewers = new Set<WebSocket>();
  wss.on('connection', (ws, req) => {
    if (new URL(req.url ?? '/', 'http://bridge').pathname === '/producer') {
      ws.on('message', (data) => {
        const msg = data.toString();
        buffer.push(msg);
        if (buffer.length > BUFFER) buffer.shift();
        for (const v of viewers) if (v.readyState === WS.OPEN) v.send(msg);
      });
      return;
    }
    viewers.add(ws);
    for (const msg of buffer) ws.send(msg);
    ws.on('message', (data) => {
      // Viewers only watch; a viewer that talks at length is dropped.
      if ((data as Buffer).length > VIEWER_MAX_FRAME) ws.close(1009, 'viewers send nothing');
    });
    ws.on('close', () => viewers.delete(ws));
    ws.on('error', () => viewers.delete(ws));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const hostPart = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const base = `http://${hostPart}:${address.port}`;

  const { createWebSocketInspector } = await import('@statelyai/inspect');
  const inspector = createWebSocketInspector({ url: `ws://${hostPart}:${address.port}/producer?key=${producerKey}` });
  const url = o.token ? `${base}/?token=${encodeURIComponent(o.token)}` : base;
  log.info({ url: o.token ? `${base}/?token=…` : base, host: address.address, port: address.port }, 'inspection on: open the bridge URL in a browser to watch the live actors');
  if (o.token) log.info('the inspection URL takes ?token=<SCALAR_INSPECT_TOKEN>');
  return {
    inspect: inspector.inspect,
    url,
    address,
    async stop() {
      inspector.stop();
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The page: the inspector UI in a frame, fed from this bridge's WebSocket with the page's own token. */
function bridgePage(inspectorUrl: string): string {
  return `<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>Scalar: live actors</title>
  <style>* { margin: 0; padding: 0; } html, body { height: 100%; } iframe { width: 100%; height: 100%; border: none; }</style>
</head>
<body>
  <iframe id="inspector" src="${inspectorUrl}"></iframe>
  <script>
    const iframe = document.getElementById('inspector');
    const buffer = [];
    let connected = false;
    window.addEventListener('message', (e) => {
      if (e.data && e.data.type === '@statelyai.connected') {
        connected = true;
        for (const event of buffer) iframe.contentWindow.postMessage(event, '*');
        buffer.length = 0;
      }
    });
    const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/' + location.search);
    ws.onmessage = (event) => {
      const data = JSON.parse(event.data);
      if (connected) iframe.contentWindow.postMessage(data, '*');
      else buffer.push(data);
    };
  </script>
</body>
</html>`;
}
