import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ErrorResponse } from '../schemas/common.ts';

/** Liveness and readiness, for load balancers and orchestrators. No key needed. */
export const healthRoutes: FastifyPluginAsyncZod = async (app) => {
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
        summary: 'Readiness: the database answers',
        security: [],
        response: { 200: z.object({ status: z.literal('ready') }), 503: ErrorResponse },
      },
    },
    async (_req, reply) => {
      try {
        await app.orm.em.fork().execute('select 1');
        return { status: 'ready' as const };
      } catch {
        return reply.status(503).send({
          error: { code: 'unavailable', message: 'the database is not reachable', details: {} },
        });
      }
    },
  );
};
