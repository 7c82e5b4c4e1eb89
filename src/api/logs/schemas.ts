import { z } from 'zod';
import { Timestamp } from '../common/schemas.ts';

export const LOG_STREAMS = ['stdout', 'stderr'] as const;
export type LogStreamName = (typeof LOG_STREAMS)[number];

export const LOG_PAGE_DEFAULT = 1000;
export const LOG_PAGE_MAX = 10_000;

const limitMessage = `must be an integer from 1 to ${LOG_PAGE_MAX}`;

export const LogQuery = z.strictObject({
  stream: z.enum(LOG_STREAMS, 'must be stdout or stderr').optional().describe('Only this output stream'),
  attempt: z.coerce
    .number({ error: 'must be an integer from 1' })
    .int('must be an integer from 1')
    .min(1, 'must be an integer from 1')
    .max(1_000_000, 'must be an integer from 1')
    .optional()
    .describe('Only lines of this attempt (1 for the first run)'),
  limit: z.coerce
    .number({ error: limitMessage })
    .int(limitMessage)
    .min(1, limitMessage)
    .max(LOG_PAGE_MAX, limitMessage)
    .default(LOG_PAGE_DEFAULT)
    .describe(`Most lines per page, 1..${LOG_PAGE_MAX} (default ${LOG_PAGE_DEFAULT})`),
  cursor: z.string().max(200).optional().describe('next_cursor from the previous page: continue after it'),
  follow: z
    .enum(['true', 'false', '1', '0'], 'must be true or false')
    .transform((v) => v === 'true' || v === '1')
    .optional()
    .describe(
      'true: answer with Server-Sent Events (text/event-stream) instead of JSON: `event: log` per line ' +
        '(its `id:` is the line\'s position, for `Last-Event-ID`), a `: keepalive` comment every 15 s, and ' +
        '`event: end` with `{status, exit_code}` once the job is finished and every line was sent',
    ),
});
export type LogQuery = z.infer<typeof LogQuery>;

export const LogHeaders = z.object({
  'last-event-id': z
    .string()
    .regex(/^\d{1,18}$/, 'must be the id of an event this API sent')
    .optional()
    .describe('With follow=true: resume after this event (EventSource sends it when it reconnects)'),
});

export const LogLine = z
  .object({
    attempt: z.number().describe('The attempt that printed it'),
    node_id: z.string().nullable().describe('The node that printed it (a gang has one per member); null for lines from agents older than gangs'),
    stream: z.enum(LOG_STREAMS),
    line: z.string().describe('One line, without its newline'),
    time: Timestamp.describe('When the agent read it'),
  })
  .meta({ id: 'LogLine' });
export type LogLine = z.infer<typeof LogLine>;

export const LogPage = z
  .object({
    data: z.array(LogLine),
    next_cursor: z
      .string()
      .nullable()
      .describe(
        'Pass as `cursor` for the lines after this page; null once every line stored so far was read ' +
          '(follow=true waits for more)',
      ),
  })
  .meta({ id: 'LogPage' });
export type LogPage = z.infer<typeof LogPage>;
