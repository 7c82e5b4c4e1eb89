import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { authErrors, bodyErrors, ErrorResponse, IdParams, existingId } from '../common/schemas.ts';
import { CreatedKey, CreateKeyBody, KeyList } from './schemas.ts';

export const keyRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/auth/api-keys',
    {
      schema: {
        tags: ['auth'],
        summary: "Create an API key for the caller's own user",
        description: 'The key is in this response only; Scalar stores just its SHA-256 hash.',
        body: CreateKeyBody,
        response: { 201: CreatedKey, ...bodyErrors, ...authErrors },
      },
    },
    async (req, reply) => {
      const created = await app.auth.createKey(req.principal.userId, req.body.name);
      return reply.status(201).send(created);
    },
  );

  app.get(
    '/auth/api-keys',
    {
      schema: {
        tags: ['auth'],
        summary: "List the caller's live API keys (never the keys themselves)",
        response: { 200: KeyList, ...authErrors },
      },
    },
    async (req) => ({ api_keys: await app.auth.listKeys(req.principal.userId) }),
  );

  app.delete(
    '/auth/api-keys/:id',
    {
      schema: {
        tags: ['auth'],
        summary: 'Revoke an API key; it is refused from its very next use',
        params: IdParams,
        response: { 204: z.null().describe('Revoked'), 404: ErrorResponse, ...authErrors },
      },
    },
    async (req, reply) => {
      await app.auth.revokeKey(req.principal, existingId('api_key', req.params.id));
      return reply.status(204).send(null);
    },
  );
};
