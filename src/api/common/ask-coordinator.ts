/**
 * The API asks the coordinator to do something (drain a node, buy a block)
 * with a core NATS request. Every way that can fail without an answer —
 * no coordinator, no answer in time, NATS down, a reply nobody can read —
 * is the same to a user: 503 `coordinator_unavailable`, with a message that
 * says what to check.
 */
import { errors as natsErrors } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Bus } from '../../wire/connection.ts';
import { encodeJson } from '../../wire/messages.ts';
import { ApiError } from './errors.ts';

export const coordinatorUnavailable = (message: string): ApiError => new ApiError('coordinator_unavailable', message, {});

export async function askCoordinator<T>(
  bus: Bus | undefined,
  subject: (b: Bus) => string,
  request: unknown,
  reply: z.ZodType<T>,
  o: { timeoutMs: number; log: Logger; what: string; context?: Record<string, unknown> },
): Promise<T> {
  if (!bus) throw coordinatorUnavailable('this API process has no NATS connection');
  let data: unknown;
  try {
    const msg = await bus.nc.request(subject(bus), encodeJson(request), { timeout: o.timeoutMs });
    data = msg.json();
  } catch (err) {
    if (err instanceof natsErrors.RequestError && err.isNoResponders()) {
      throw coordinatorUnavailable('no coordinator answered; is `scalar coordinator` running?');
    }
    if (err instanceof natsErrors.TimeoutError || (err as Error)?.name === 'TimeoutError') {
      throw coordinatorUnavailable(`no coordinator answered within ${o.timeoutMs / 1000} s; is \`scalar coordinator\` running?`);
    }
    if (err instanceof SyntaxError) {
      o.log.error({ err, ...o.context }, `the coordinator sent a ${o.what} reply that is not JSON`);
      throw coordinatorUnavailable('the coordinator sent a reply this API does not understand');
    }
    o.log.warn({ err, ...o.context }, `${o.what} request failed`);
    throw coordinatorUnavailable('NATS is unreachable, so the coordinator cannot be asked; retry shortly');
  }
  const parsed = reply.safeParse(data);
  if (!parsed.success) {
    o.log.error({ reply: data, ...o.context }, `the coordinator sent a malformed ${o.what} reply`);
    throw coordinatorUnavailable('the coordinator sent a reply this API does not understand');
  }
  return parsed.data;
}
