import { z } from 'zod';
import { isoTimeQuery, Timestamp } from '../common/schemas.ts';

export const USAGE_DEFAULT_DAYS = 30;

export const UsageQuery = z.strictObject({
  from: isoTimeQuery()
    .optional()
    .describe(`Start of the period, inclusive (ISO 8601). Default ${USAGE_DEFAULT_DAYS} days before \`to\``),
  to: isoTimeQuery().optional().describe('End of the period, exclusive (ISO 8601). Default now'),
  user_id: z
    .string()
    .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'must be a user id (UUID)')
    .optional()
    .describe("Admins: that user's usage (users lists just them). Others may only name themselves"),
});
export type UsageQuery = z.infer<typeof UsageQuery>;

export const TierUsage = z
  .object({
    attempts: z.number().describe('Job attempts that released GPUs in the period'),
    gpu_seconds: z.number(),
    gpu_hours: z.number(),
    cost_usd: z.number(),
  })
  .meta({ id: 'TierUsage' });
export type TierUsage = z.infer<typeof TierUsage>;

export const UsageByTier = z.object({ FAST: TierUsage, FLEX: TierUsage }).meta({ id: 'UsageByTier' });
export type UsageByTier = z.infer<typeof UsageByTier>;

export const UserUsage = z
  .object({ user_id: z.string(), name: z.string().nullable(), FAST: TierUsage, FLEX: TierUsage })
  .meta({ id: 'UserUsage' });

export const UsageResponse = z
  .object({
    from: Timestamp.describe('Start of the period, inclusive'),
    to: Timestamp.describe('End of the period, exclusive'),
    prices: z
      .object({ FAST: z.number(), FLEX: z.number() })
      .describe('Current price of one GPU-hour per tier, USD (usage is costed when it is recorded)'),
    user_id: z.string().describe('Whose usage `totals` is: the caller, or the user_id asked for'),
    totals: UsageByTier.describe('Usage recorded (usage_records.ended_at) within the period, per tier'),
    all: UsageByTier.optional().describe('Admins only: the sum over `users`'),
    users: z
      .array(UserUsage)
      .optional()
      .describe('Admins only: every user with usage in the period (or just user_id), most expensive first'),
  })
  .meta({ id: 'Usage' });
export type UsageResponse = z.infer<typeof UsageResponse>;
