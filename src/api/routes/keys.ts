import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { authErrors, bodyErrors, ErrorResponse, IdParams, existingId } from '../schemas/common.ts';
import { CreatedKey, CreatedUser, CreateKeyBody, CreateUserBody, KeyList } from '../schemas/auth.ts';

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

  app.post(
    '/users',
    {
      config: { admin: true },
      schema: {
        tags: ['auth'],
        summary: 'Create a user and its first API key (admin only)',
        body: CreateUserBody,
        response: { 201: CreatedUser, 403: ErrorResponse, ...bodyErrors, ...authErrors },
      },
    },
    async (req, reply) => {
      const { user, key } = await app.auth.createUser(req.body.name, req.body.is_admin ?? false);
      return reply.status(201).send({
        id: user.id,
        name: user.name,
        is_admin: user.isAdmin,
        created_at: user.createdAt.toISOString(),
        api_key: key.api_key,
        api_key_id: key.id,
      });
    },
  );
};
