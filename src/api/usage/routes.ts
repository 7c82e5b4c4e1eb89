import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { authErrors, ErrorResponse } from '../common/schemas.ts';
import { UsageQuery, UsageResponse } from './schemas.ts';

export const usageRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/usage',
    {
      schema: {
        tags: ['usage'],
        summary: 'GPU usage and cost per tier over a period',
        description:
          "The caller's usage recorded in [from, to) (default: the last 30 days). Admins also get every user's " +
          '(`users`) and their sum (`all`), and may ask for one user with `user_id`. 400 naming `from` or `to` ' +
          'for a malformed date or from after to.',
        querystring: UsageQuery,
        response: { 200: UsageResponse, 403: ErrorResponse, 404: ErrorResponse, ...authErrors },
      },
    },
    async (req) => app.usage.usage(req.principal, req.query),
  );
};
