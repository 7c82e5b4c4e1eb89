import type { Principal } from '../auth/principal.ts';
import type { AuthService } from '../auth/service.ts';
import type { JobService } from '../jobs/service.ts';
import type { EndpointService } from '../endpoints/service.ts';
import type { Config } from '../config/index.ts';
import type { MikroORM } from '@mikro-orm/postgresql';

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
    auth: AuthService;
    jobs: JobService;
    endpoints: EndpointService;
  }
}
