import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { authErrors, bodyErrors, ErrorResponse, IdParams, existingId } from '../common/schemas.ts';
import { CreateEndpointBody, EndpointList, EndpointListQuery, EndpointResponse } from './schemas.ts';

const checkId = (id: string) => existingId('endpoint', id);

export const endpointRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/endpoints',
    {
      schema: {
        tags: ['endpoints'],
        summary: 'Create an endpoint definition (stored; not deployed by this version)',
        body: CreateEndpointBody,
        response: { 201: EndpointResponse, 409: ErrorResponse, ...bodyErrors, ...authErrors },
      },
    },
    async (req, reply) => reply.status(201).send(await app.endpoints.create(req.principal, req.body)),
  );

  app.get(
    '/endpoints',
    {
      schema: {
        tags: ['endpoints'],
        summary: 'List endpoints, newest first',
        querystring: EndpointListQuery,
        response: { 200: EndpointList, ...authErrors },
      },
    },
    async (req) => app.endpoints.list(req.principal, req.query),
  );

  app.get(
    '/endpoints/:id',
    {
      schema: {
        tags: ['endpoints'],
        summary: 'Get an endpoint',
        params: IdParams,
        response: { 200: EndpointResponse, 404: ErrorResponse, ...authErrors },
      },
    },
    async (req) => app.endpoints.get(req.principal, checkId(req.params.id)),
  );

  app.delete(
    '/endpoints/:id',
    {
      schema: {
        tags: ['endpoints'],
        summary: 'Delete an endpoint',
        params: IdParams,
        response: { 204: z.null().describe('Deleted'), 404: ErrorResponse, ...authErrors },
      },
    },
    async (req, reply) => {
      await app.endpoints.delete(req.principal, checkId(req.params.id));
      return reply.status(204).send(null);
    },
  );
};
