import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ErrorResponse } from '../common/schemas.ts';

type NatsHealth = 'ok' | 'closed' | 'reconnecting' | 'unresponsive' | 'not_configured';

/** How long /readyz waits for a NATS round trip. */
const NATS_PING_MS = 2000;

/** Liveness and readiness, for load balancers and orchestrators. No key needed. */
export const healthRoutes: FastifyPluginAsyncZod = async (app) => {
  // The connection reports losing and regaining the server; readiness follows it.
  let natsDown = false;
  const bus = app.bus;
  if (bus) {
    const statuses = bus.nc.status();
    void (async () => {
      for await (const s of statuses) {
        if (s.type === 'disconnect' || s.type === 'reconnecting' || s.type === 'staleConnection') natsDown = true;
        else if (s.type === 'reconnect') natsDown = false;
      }
    })().catch(() => undefined);
    app.addHook('onClose', async () => (statuses as { stop?: () => void }).stop?.());
  }

  async function natsHealth(): Promise<NatsHealth> {
    if (!bus) return 'not_configured';
    if (bus.nc.isClosed()) return 'closed';
    if (natsDown) return 'reconnecting';
    let timer: NodeJS.Timeout | undefined;
    try {
      const answered = await Promise.race([
        bus.nc.flush().then(() => true),
        new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), NATS_PING_MS))),
      ]);
      return answered ? 'ok' : 'unresponsive';
    } catch {
      return bus.nc.isClosed() ? 'closed' : 'unresponsive';
    } finally {
      clearTimeout(timer);
    }
  }

  app.get(
    '/healthz',
    {
      config: { public: true },
      schema: {
        tags: ['health'],
        summary: 'Liveness: the process is up',
        security: [],
        response: { 200: z.object({ status: z.literal('ok') }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      config: { public: true },
      schema: {
        tags: ['health'],
        summary: 'Readiness: the database and NATS answer',
        description:
          'A 503 says which is down in `details`: `database` is ok or unreachable; `nats` is ok, closed, ' +
          'reconnecting or unresponsive.',
        security: [],
        response: { 200: z.object({ status: z.literal('ready') }), 503: ErrorResponse },
      },
    },
    async (_req, reply) => {
      const [database, nats] = await Promise.all([
        app.orm.em
          .fork()
          .execute('select 1')
          .then(
            () => 'ok' as const,
            () => 'unreachable' as const,
          ),
        natsHealth(),
      ]);
      if (database === 'ok' && (nats === 'ok' || nats === 'not_configured')) return { status: 'ready' as const };
      const problems = [
        ...(database === 'ok' ? [] : ['the database is not reachable']),
        ...(nats === 'ok' || nats === 'not_configured' ? [] : [`NATS is ${nats}`]),
      ];
      return reply.status(503).send({
        error: { code: 'unavailable', message: problems.join('; '), details: { database, nats } },
      });
    },
  );
};
