import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { Config } from '../config/index.ts';
import { AuthService } from '../auth/service.ts';
import { JobService } from './jobs/service.ts';
import { EndpointService } from './endpoints/service.ts';
import { LogService, type LogServiceOptions } from './logs/service.ts';
import { NodeService, type NodeServiceOptions } from './nodes/service.ts';
import { UserService } from './users/service.ts';
import { UsageService } from './usage/service.ts';
import { CapacityAdminService, type CapacityAdminOptions } from './capacity/service.ts';
import type { Bus } from '../wire/connection.ts';
import { frameworkErrorHandler, registerErrorHandling } from './plugins/errors.ts';
import { registerAuth } from './plugins/auth.ts';
import { registerDocs } from './plugins/docs.ts';
import { healthRoutes } from './health/routes.ts';
import { keyRoutes } from './keys/routes.ts';
import { jobRoutes } from './jobs/routes.ts';
import { endpointRoutes } from './endpoints/routes.ts';
import { logRoutes } from './logs/routes.ts';
import { nodeRoutes } from './nodes/routes.ts';
import { userRoutes } from './users/routes.ts';
import { capacityRoutes } from './capacity/routes.ts';
import { usageRoutes } from './usage/routes.ts';
import './types.ts';

export const BODY_LIMIT = 1024 * 1024;
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** One log line per request (when it completes, with status and time), not two. */
class QuietIncoming extends LogController {
  override incomingRequest(): void {}
}

export interface AppDeps {
  cfg: Config;
  orm: MikroORM;
  log: Logger;
  /**
   * NATS: wakes the coordinator on submit and cancel, serves job logs and
   * carries node and capacity actions. Optional so that tests of the REST surface alone
   * can skip it; without it logs, node and capacity actions answer 503. The caller
   * owns it: closing the app does not close the bus.
   */
  bus?: Bus;
  /** Tuning for tests. */
  logs?: LogServiceOptions;
  nodes?: NodeServiceOptions;
  capacity?: CapacityAdminOptions;
}

/**
 * The whole REST API as one Fastify instance, not yet listening: the server
 * (src/api/server.ts) listens, and tests call inject(). Services are built
 * here and closed with the app.
 */
export async function buildApp({ cfg, orm, log, bus, ...opts }: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT,
    // A caller's X-Request-Id is kept (when sane) so their logs and ours line up.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    logController: new QuietIncoming({ requestIdLogLabel: 'request_id' }),
    return503OnClosing: true,
    frameworkErrors: frameworkErrorHandler,
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  // JSON bodies: fastify's own (prototype-poisoning-safe) parser, except that
  // an empty body is "no body" rather than an error, so `POST /jobs/{id}/cancel`
  // with a Content-Type but nothing else works as curl users expect.
  const defaultJson = app.getDefaultJsonParser('error', 'error');
  // JSON only: a text/plain body is a 415, not a confusing type error.
  app.removeContentTypeParser('text/plain');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: BODY_LIMIT }, (req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, undefined);
    defaultJson(req, text, done);
  });

  const auth = new AuthService(orm, { cacheTtlSec: cfg.SCALAR_KEY_CACHE_TTL_SEC }, log.child({ component: 'auth' }));
  const jobs = new JobService(orm, cfg, { bus, log: log.child({ component: 'jobs' }) });
  const endpoints = new EndpointService(orm, cfg);
  const logs = new LogService(orm, bus, log.child({ component: 'logs' }), opts.logs);
  const nodes = new NodeService(orm, bus, log.child({ component: 'nodes' }), opts.nodes);
  const users = new UserService(orm, auth);
  const usage = new UsageService(orm, cfg);
  const capacityAdmin = new CapacityAdminService(orm, bus, log.child({ component: 'capacity-admin' }), opts.capacity);
  app.decorate('cfg', cfg);
  app.decorate('orm', orm);
  app.decorate('bus', bus);
  app.decorate('auth', auth);
  app.decorate('jobs', jobs);
  app.decorate('endpoints', endpoints);
  app.decorate('logs', logs);
  app.decorate('nodes', nodes);
  app.decorate('users', users);
  app.decorate('usage', usage);
  app.decorate('capacityAdmin', capacityAdmin);

  // While shutting down, answers close their connection: a keep-alive socket
  // that finishes its last request must not hold the server open until the
  // keep-alive timeout.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
    // Log follows would hold their connections open forever: end them now.
    logs.stop();
  });
  app.addHook('onSend', async (req, reply) => {
    reply.header('x-request-id', req.id);
    if (closing) reply.header('connection', 'close');
  });
  app.addHook('onClose', async () => {
    await jobs.drain();
    await auth.stop();
  });

  registerErrorHandling(app);
  registerAuth(app);
  await registerDocs(app);
  await app.register(healthRoutes);
  await app.register(keyRoutes);
  await app.register(jobRoutes);
  await app.register(endpointRoutes);
  await app.register(logRoutes);
  await app.register(nodeRoutes);
  await app.register(userRoutes);
  await app.register(capacityRoutes);
  await app.register(usageRoutes);
  await auth.start();
  await app.ready();
  return app;
}
