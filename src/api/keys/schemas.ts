import { z } from 'zod';
import { NullableTimestamp, storableString, Timestamp } from '../common/schemas.ts';

/** A display name: of an API key, of a user. */
export const Name = storableString().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters');

export const CreateKeyBody = z.strictObject({ name: Name.describe('A label for the key') }).meta({ id: 'CreateApiKey' });

/** Exactly the spec's shape: the key is shown here once and never again. */
export const CreatedKey = z
  .object({ api_key: z.string().describe('The secret key, shown only once'), id: z.string() })
  .meta({ id: 'CreatedApiKey' });

export const KeyInfo = z
  .object({
    id: z.string(),
    name: z.string(),
    prefix: z.string().describe('First characters of the key, to tell keys apart'),
    created_at: Timestamp,
    last_used_at: NullableTimestamp.describe('Approximate: updated at most once a minute'),
  })
  .meta({ id: 'ApiKeyInfo' });

export const KeyList = z.object({ api_keys: z.array(KeyInfo) }).meta({ id: 'ApiKeyList' });
