import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../common/errors.ts';

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/**
 * Every route needs `Authorization: Bearer sk_…` unless its config says
 * `public: true`; routes with `admin: true` also need an admin key.
 * Missing, malformed, unknown and revoked keys all get the same 401 code.
 */
export function registerAuth(app: FastifyInstance): void {
  app.decorateRequest('principal', null as never);
  app.addHook('onRequest', async (request: FastifyRequest) => {
    if (request.is404 || request.routeOptions.config?.public) return;
    const header = request.headers.authorization;
    if (!header) {
      throw new ApiError('unauthorized', "missing Authorization header; send 'Authorization: Bearer sk_…'", {
        reason: 'missing',
      });
    }
    const m = BEARER.exec(header);
    if (!m) {
      throw new ApiError('unauthorized', "malformed Authorization header; send 'Authorization: Bearer sk_…'", {
        reason: 'malformed',
      });
    }
    const principal = await app.auth.verify(m[1]!);
    if (!principal) throw new ApiError('unauthorized', 'unknown or revoked API key', { reason: 'invalid_key' });
    request.principal = principal;
    if (request.routeOptions.config?.admin && !principal.isAdmin) {
      throw new ApiError('forbidden', 'this route needs an admin API key', {});
    }
  });
}
