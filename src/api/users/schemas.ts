import { z } from 'zod';
import { Name } from '../keys/schemas.ts';
import { Timestamp } from '../common/schemas.ts';

export const MAX_FAIR_SHARE_WEIGHT = 1_000_000;
const weightMessage = `must be a number greater than 0 and at most ${MAX_FAIR_SHARE_WEIGHT}`;

/**
 * Weighted fair share: while GPUs are contended, a user with weight 2 may hold
 * twice the GPU share of a user with weight 1 before their jobs yield.
 */
export const FairShareWeight = z
  .number({ error: weightMessage })
  .gt(0, weightMessage)
  .max(MAX_FAIR_SHARE_WEIGHT, weightMessage)
  .describe(
    `Fair-share weight, > 0 (at most ${MAX_FAIR_SHARE_WEIGHT}). While GPUs are contended a user with weight 2 ` +
      'may hold twice the GPU share of a user with weight 1 before their jobs yield. Default 1',
  );

export const CreateUserBody = z
  .strictObject({
    name: Name.describe('Display name of the user'),
    is_admin: z.boolean().optional().describe('Admins see and manage every job. Default false'),
    fair_share_weight: FairShareWeight.optional(),
  })
  .meta({ id: 'CreateUser' });
export type CreateUserBody = z.infer<typeof CreateUserBody>;

export const UpdateUserBody = z
  .strictObject({ fair_share_weight: FairShareWeight })
  .meta({ id: 'UpdateUser' });
export type UpdateUserBody = z.infer<typeof UpdateUserBody>;

export const UserResponse = z
  .object({
    id: z.string(),
    name: z.string(),
    is_admin: z.boolean(),
    fair_share_weight: z.number(),
    created_at: Timestamp,
  })
  .meta({ id: 'User' });
export type UserResponse = z.infer<typeof UserResponse>;

export const CreatedUser = z
  .object({
    ...UserResponse.shape,
    api_key: z.string().describe("The user's first key, shown only once"),
    api_key_id: z.string(),
  })
  .meta({ id: 'CreatedUser' });
export type CreatedUser = z.infer<typeof CreatedUser>;
