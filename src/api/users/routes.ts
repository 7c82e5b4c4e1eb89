import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { authErrors, bodyErrors, ErrorResponse, existingId, IdParams } from '../common/schemas.ts';
import { CreatedUser, CreateUserBody, UpdateUserBody, UserResponse } from './schemas.ts';

/** Users, for operators: admin keys only. */
export const userRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/users',
    {
      config: { admin: true },
      schema: {
        tags: ['users'],
        summary: 'Create a user and its first API key (admin only)',
        body: CreateUserBody,
        response: { 201: CreatedUser, 403: ErrorResponse, ...bodyErrors, ...authErrors },
      },
    },
    async (req, reply) => {
      const created = await app.users.create({
        name: req.body.name,
        isAdmin: req.body.is_admin ?? false,
        fairShareWeight: req.body.fair_share_weight ?? 1,
      });
      return reply.status(201).send(created);
    },
  );

  app.patch(
    '/users/:id',
    {
      config: { admin: true },
      schema: {
        tags: ['users'],
        summary: "Change a user's fair-share weight (admin only)",
        description: "Takes effect from the coordinator's next scheduling pass. 404 for an unknown user.",
        params: IdParams,
        body: UpdateUserBody,
        response: { 200: UserResponse, 403: ErrorResponse, 404: ErrorResponse, ...bodyErrors, ...authErrors },
      },
    },
    async (req) => app.users.setWeight(existingId('user', req.params.id), req.body.fair_share_weight),
  );
};
