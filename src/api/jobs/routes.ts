import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { authErrors, bodyErrors, ErrorResponse, IdParams, existingId } from '../common/schemas.ts';
import {
  IdempotencyHeaders,
  JobEventList,
  JobList,
  JobListQuery,
  JobResponse,
  JobSubmitBody,
} from './schemas.ts';

const checkId = (id: string) => existingId('job', id);

export const jobRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/jobs',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Submit a job',
        description:
          'Answers once the job is durably stored, as `pending`. With an `Idempotency-Key` header, repeating the ' +
          'same request within 24 h returns the first job (header `Idempotent-Replayed: true`); reusing the key ' +
          'with a different body is a 422.',
        headers: IdempotencyHeaders,
        body: JobSubmitBody,
        response: { 201: JobResponse, 422: ErrorResponse, ...bodyErrors, ...authErrors },
      },
    },
    async (req, reply) => {
      const { job, replayed } = await app.jobs.submit(req.principal, req.body, req.headers['idempotency-key']);
      if (replayed) reply.header('idempotent-replayed', 'true');
      reply.header('location', `/jobs/${job.id}`);
      return reply.status(201).send(job);
    },
  );

  app.get(
    '/jobs',
    {
      schema: {
        tags: ['jobs'],
        summary: 'List jobs, newest first',
        description:
          'Admins see every job, users their own. Follow `next_cursor` until it is null: each job appears exactly ' +
          'once, even while new jobs arrive.',
        querystring: JobListQuery,
        response: { 200: JobList, ...authErrors },
      },
    },
    async (req) => app.jobs.list(req.principal, req.query),
  );

  app.get(
    '/jobs/:id',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Get a job',
        params: IdParams,
        response: { 200: JobResponse, 404: ErrorResponse, ...authErrors },
      },
    },
    async (req) => app.jobs.get(req.principal, checkId(req.params.id)),
  );

  app.post(
    '/jobs/:id/cancel',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Cancel a job',
        description:
          'The coordinator commits the cancel (and sends the kill to a scheduled or running job) before this ' +
          'answers. Idempotent: cancelling a cancelled job returns it again. A job that already completed or failed ' +
          'answers 409 `job_already_finished` with its status. 503 `coordinator_unavailable`, with `Retry-After`, ' +
          'when no coordinator answers within SCALAR_COORDINATOR_TIMEOUT_MS (default 5 s): the job may or may not ' +
          'be cancelled yet, and asking again is safe.',
        params: IdParams,
        response: { 200: JobResponse, 404: ErrorResponse, 409: ErrorResponse, ...authErrors },
      },
    },
    async (req) => app.jobs.cancel(req.principal, checkId(req.params.id)),
  );

  app.get(
    '/jobs/:id/events',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Every status transition of a job, oldest first',
        params: IdParams,
        response: { 200: JobEventList, 404: ErrorResponse, ...authErrors },
      },
    },
    async (req) => app.jobs.events(req.principal, checkId(req.params.id)),
  );
};
