/**
 * SCALAR_INSPECT=1: stream the coordinator's live actors (the coordinator's
 * job and node actors) to the Stately inspector. A local WebSocket server
 * bridges inspection events to the inspector UI opened in a browser.
 */
import type { Logger } from 'pino';
import type { Inspect } from './live.ts';

export interface Inspection {
  inspect: Inspect;
  url: string;
  stop(): void;
}

export async function startInspection(port: number, log: Logger): Promise<Inspection> {
  const { createInspectorServer } = await import('@statelyai/inspect/server');
  const { createWebSocketInspector } = await import('@statelyai/inspect');
  const server = createInspectorServer({ port, autoOpen: false });
  const inspector = createWebSocketInspector({ url: `ws://127.0.0.1:${port}` });
  const url = `http://127.0.0.1:${port}`;
  log.info({ url }, 'inspection on: open this URL in a browser to watch the live actors');
  return {
    inspect: inspector.inspect,
    url,
    stop() {
      inspector.stop();
      server.stop();
    },
  };
}
