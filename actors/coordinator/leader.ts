/**
 * Leader election: only one coordinator acts at a time.
 *
 * A session-level Postgres advisory lock, held on a connection of its own.
 * Standbys poll `pg_try_advisory_lock` every `pollMs`; when the leader dies its
 * connection closes, Postgres frees the lock, and a standby takes over within
 * about one poll. A leader whose lock connection fails stops acting at once
 * (`onLost`): it can no longer prove it is the only one.
 */
import pg from 'pg';
import type { Logger } from 'pino';

/** Arbitrary but fixed; distinct from the migration and insert locks. */
export const LEADER_LOCK_ID = 0x5ca1ad;

export interface Leadership {
  /** Resolves once this process holds the lock. Rejects if stopped first. */
  acquired: Promise<void>;
  /** Releases the lock (if held) and closes the connection. */
  release(): Promise<void>;
}

export function electLeader(
  databaseUrl: string,
  log: Logger,
  opts: { pollMs?: number; checkMs?: number; onLost: (err: Error) => void },
): Leadership {
  const pollMs = opts.pollMs ?? 1000;
  const checkMs = opts.checkMs ?? 2000;
  let client: pg.Client | null = null;
  let stopped = false;
  let leading = false;
  let timer: NodeJS.Timeout | undefined;

  const lost = (err: Error) => {
    if (stopped || !leading) return;
    leading = false;
    log.error({ err }, 'lost the leader lock connection: stopping this coordinator');
    opts.onLost(err);
  };

  const connect = async (): Promise<pg.Client> => {
    const c = new pg.Client({ connectionString: databaseUrl, keepAlive: true, application_name: 'scalar-coordinator-leader' });
    c.on('error', (err) => lost(err));
    c.on('end', () => lost(new Error('leader lock connection closed')));
    await c.connect();
    return c;
  };

  const acquired = new Promise<void>((resolve, reject) => {
    let waitingLogged = false;
    const attempt = async () => {
      if (stopped) return reject(new Error('stopped before becoming leader'));
      try {
        client ??= await connect();
        const res = await client.query<{ ok: boolean }>('select pg_try_advisory_lock($1) as ok', [LEADER_LOCK_ID]);
        if (res.rows[0]?.ok) {
          leading = true;
          // Keep checking the connection: a silent network failure must not leave two leaders.
          timer = setInterval(() => {
            client?.query('select 1').catch((err: Error) => lost(err));
          }, checkMs);
          timer.unref();
          return resolve();
        }
        if (!waitingLogged) {
          log.info('another coordinator is the leader; standing by');
          waitingLogged = true;
        }
      } catch (err) {
        log.warn({ err }, 'leader election: database not reachable; retrying');
        await client?.end().catch(() => undefined);
        client = null;
      }
      timer = setTimeout(() => void attempt(), pollMs);
      timer.unref();
    };
    void attempt();
  });

  return {
    acquired,
    async release() {
      stopped = true;
      clearTimeout(timer);
      clearInterval(timer);
      const c = client;
      client = null;
      if (!c) return;
      if (leading) await c.query('select pg_advisory_unlock($1)', [LEADER_LOCK_ID]).catch(() => undefined);
      leading = false;
      await c.end().catch(() => undefined);
    },
  };
}
