import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { authErrors, bodyErrors, ErrorResponse } from '../common/schemas.ts';
import {
  BlockParams,
  BuyBlockBody,
  CapacityBlockList,
  CapacityBlockListQuery,
  CapacityBlockResponse,
  CapacityEventList,
  CapacityEventListQuery,
  CapacityOverview,
  CapacityQuery,
  ReleaseBlockBody,
} from './schemas.ts';

/** Capacity: pools, queues, bought blocks and the autoscaler's decisions. Admin keys only. */
export const capacityRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/capacity',
    {
      config: { admin: true },
      schema: {
        tags: ['capacity'],
        summary: 'Capacity and demand now: per pool, per tier queue, and blocks by status (admin only)',
        querystring: CapacityQuery,
        response: { 200: CapacityOverview, 403: ErrorResponse, ...authErrors },
      },
    },
    async () => app.capacityAdmin.overview(),
  );

  app.get(
    '/capacity/blocks',
    {
      config: { admin: true },
      schema: {
        tags: ['capacity'],
        summary: 'List capacity blocks, newest first (admin only)',
        description: 'Follow `next_cursor` until it is null: each block appears exactly once.',
        querystring: CapacityBlockListQuery,
        response: { 200: CapacityBlockList, 403: ErrorResponse, ...authErrors },
      },
    },
    async (req) => app.capacityAdmin.listBlocks(req.query),
  );

  app.get(
    '/capacity/blocks/:id',
    {
      config: { admin: true },
      schema: {
        tags: ['capacity'],
        summary: 'Get a capacity block with its nodes (admin only)',
        params: BlockParams,
        response: { 200: CapacityBlockResponse, 403: ErrorResponse, 404: ErrorResponse, ...authErrors },
      },
    },
    async (req) => app.capacityAdmin.getBlock(req.params.id),
  );

  app.post(
    '/capacity/blocks',
    {
      config: { admin: true },
      schema: {
        tags: ['capacity'],
        summary: 'Buy a capacity block (admin only)',
        description:
          "The coordinator's capacity actor buys it from the provider and answers with the block, normally " +
          '`pending` until its nodes register. 400 `unknown_instance_type` when the provider does not sell ' +
          'that type; 503 `provider_unavailable` when the provider refused or is down; 503 ' +
          '`coordinator_unavailable` when no coordinator answers within 10 s.',
        body: BuyBlockBody,
        response: { 201: CapacityBlockResponse, 403: ErrorResponse, 409: ErrorResponse, ...bodyErrors, ...authErrors },
      },
    },
    async (req, reply) => {
      const block = await app.capacityAdmin.buy(req.principal, req.body);
      reply.header('location', `/capacity/blocks/${block.id}`);
      return reply.status(201).send(block);
    },
  );

  app.post(
    '/capacity/blocks/:id/release',
    {
      config: { admin: true },
      schema: {
        tags: ['capacity'],
        summary: 'Release a capacity block (admin only)',
        description:
          '200 with the block `released` when none of its nodes ran jobs. 202 with the block `draining` when ' +
          'some did: its nodes take no new jobs, and the block is released once they finish (poll ' +
          '`GET /capacity/blocks/{id}`). 409 `block_released` when it already was; 409 `invalid_state` when the ' +
          "coordinator refuses in the block's state; 503 `coordinator_unavailable` when no coordinator answers " +
          'within 10 s.',
        params: BlockParams,
        body: ReleaseBlockBody,
        response: {
          200: CapacityBlockResponse,
          202: CapacityBlockResponse,
          403: ErrorResponse,
          404: ErrorResponse,
          409: ErrorResponse,
          ...bodyErrors,
          ...authErrors,
        },
      },
    },
    async (req, reply) => {
      const block = await app.capacityAdmin.release(req.principal, req.params.id);
      return reply.status(block.status === 'released' ? 200 : 202).send(block);
    },
  );

  app.get(
    '/capacity/events',
    {
      config: { admin: true },
      schema: {
        tags: ['capacity'],
        summary: "The autoscaler's (and admins') capacity decisions, newest first (admin only)",
        description: 'Each decision with the inputs it was made on. Follow `next_cursor` until it is null.',
        querystring: CapacityEventListQuery,
        response: { 200: CapacityEventList, 403: ErrorResponse, ...authErrors },
      },
    },
    async (req) => app.capacityAdmin.listEvents(req.query),
  );
};
