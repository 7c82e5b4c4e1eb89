import { z } from 'zod';
import { PageQuery, Timestamp } from '../common/schemas.ts';
import { ResourceFields, ResourceFieldsOut } from '../common/resources.ts';

export const ENDPOINT_STATUSES = ['not_deployed'] as const;

export const CreateEndpointBody = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be 1-63 lowercase letters, digits or dashes, starting and ending with a letter or digit'),
    ...ResourceFields,
  })
  .meta({ id: 'EndpointCreate' });
export type CreateEndpointBody = z.infer<typeof CreateEndpointBody>;

export const EndpointResponse = z
  .object({
    id: z.string(),
    user_id: z.string(),
    name: z.string(),
    ...ResourceFieldsOut,
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
