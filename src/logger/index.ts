import pino, { type Logger } from 'pino';
import type { Config } from '../config/index.ts';

/**
 * The process logger: JSON lines by default, pretty for people under
 * `scalar dev`. Components take a child: log.child({ component: 'api' }).
 */
export function createLogger(cfg: Config, opts: { pretty?: boolean; toStderr?: boolean } = {}): Logger {
  const pretty = cfg.LOG_FORMAT ? cfg.LOG_FORMAT === 'pretty' : (opts.pretty ?? false);
  // One-shot commands print their result on stdout, so their logs go to stderr.
  const fd = opts.toStderr ? 2 : 1;
  return pino(
    {
      level: cfg.LOG_LEVEL,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.api_key'], censor: '[redacted]' },
      ...(pretty
        ? {
            transport: {
              target: 'pino-pretty',
              options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', destination: fd },
            },
          }
        : {}),
    },
    pretty ? undefined : pino.destination({ fd, sync: false }),
  );
}
