import type { Principal } from '../auth/principal.ts';
import type { AuthService } from '../auth/service.ts';
import type { JobService } from './jobs/service.ts';
import type { EndpointService } from './endpoints/service.ts';
import type { Config } from '../config/index.ts';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Bus } from '../wire/connection.ts';
import type { LogService } from './logs/service.ts';
import type { NodeService } from './nodes/service.ts';
import type { UserService } from './users/service.ts';
import type { UsageService } from './usage/service.ts';
import type { CapacityAdminService } from './capacity/service.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** No API key needed (health, docs). */
    public?: boolean;
    /** Only admin keys. */
    admin?: boolean;
  }
  interface FastifyRequest {
    /** Set by the auth hook on every non-public route. */
    principal: Principal;
  }
  interface FastifyInstance {
    cfg: Config;
    orm: MikroORM;
    /** Undefined when the app was built without NATS (some tests). */
    bus: Bus | undefined;
    auth: AuthService;
    jobs: JobService;
    endpoints: EndpointService;
    logs: LogService;
    nodes: NodeService;
    users: UserService;
    usage: UsageService;
    capacityAdmin: CapacityAdminService;
  }
}
