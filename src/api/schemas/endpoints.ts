import { z } from 'zod';
import { PageQuery, Timestamp } from './common.ts';

export const ENDPOINT_STATUSES = ['not_deployed'] as const;

export const CreateEndpointBody = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be 1-63 lowercase letters, digits or dashes, starting and ending with a letter or digit'),
    image: z.string().trim().min(1, 'must not be empty').max(512, 'must be at most 512 characters'),
    gpu_count: z.int('must be an integer').min(1, 'must be from 1 to 64').max(64, 'must be from 1 to 64'),
    vram_per_gpu_gb: z
      .number()
      .gt(0, 'must be greater than 0 and at most 1024')
      .max(1024, 'must be greater than 0 and at most 1024')
      .optional(),
    cpu_cores: z.number().positive('must be positive').max(1024, 'must be at most 1024').optional(),
    ram_gb: z.number().positive('must be positive').max(65536, 'must be at most 65536').optional(),
  })
  .meta({ id: 'EndpointCreate' });
export type CreateEndpointBody = z.infer<typeof CreateEndpointBody>;

export const EndpointResponse = z
  .object({
    id: z.string(),
    user_id: z.string(),
    name: z.string(),
    image: z.string(),
    gpu_count: z.number(),
    vram_per_gpu_gb: z.number(),
    cpu_cores: z.number(),
    ram_gb: z.number(),
    status: z.enum(ENDPOINT_STATUSES).describe('Serving endpoints are not deployed yet by this version'),
    status_reason: z.string().nullable(),
    created_at: Timestamp,
    updated_at: Timestamp,
  })
  .meta({ id: 'Endpoint' });

export const EndpointListQuery = z.strictObject({ ...PageQuery });
export const EndpointList = z
  .object({ endpoints: z.array(EndpointResponse), next_cursor: z.string().nullable() })
  .meta({ id: 'EndpointList' });
