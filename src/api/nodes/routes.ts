import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { authErrors, bodyErrors, ErrorResponse } from '../common/schemas.ts';
import { NodeActionBody, NodeList, NodeListQuery, NodeParams, NodeResponse } from './schemas.ts';

/** GPU nodes, for operators: admin keys only. */
export const nodeRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/nodes',
    {
      config: { admin: true },
      schema: {
        tags: ['nodes'],
        summary: 'List nodes by id (admin only)',
        description:
          'Each node with its GPUs, the job holding each GPU, and its free resources. Follow `next_cursor` ' +
          'until it is null.',
        querystring: NodeListQuery,
        response: { 200: NodeList, 403: ErrorResponse, ...authErrors },
      },
    },
    async (req) => app.nodes.list(req.query),
  );

  app.get(
    '/nodes/:id',
    {
      config: { admin: true },
      schema: {
        tags: ['nodes'],
        summary: 'Get a node (admin only)',
        params: NodeParams,
        response: { 200: NodeResponse, 403: ErrorResponse, 404: ErrorResponse, ...authErrors },
      },
    },
    async (req) => app.nodes.get(req.params.id),
  );

  for (const action of ['drain', 'resume'] as const) {
    app.post(
      `/nodes/:id/${action}`,
      {
        config: { admin: true },
        schema: {
          tags: ['nodes'],
          summary:
            action === 'drain'
              ? 'Drain a node: it keeps its running jobs and takes no new ones (admin only)'
              : 'Resume a drained node: it takes new jobs again (admin only)',
          description:
            'The body is optional (`{"reason": "…"}`). The coordinator carries the action out; the answer is ' +
            'the node afterwards. 409 `invalid_state` when the ' +
            "node's state does not allow it; 503 `coordinator_unavailable` when no coordinator answers within 5 s.",
          params: NodeParams,
          body: NodeActionBody,
          response: {
            200: NodeResponse,
            403: ErrorResponse,
            404: ErrorResponse,
            409: ErrorResponse,
            ...bodyErrors,
            ...authErrors,
          },
        },
      },
      async (req) => app.nodes.action(action, req.params.id, req.body?.reason),
    );
  }
};
