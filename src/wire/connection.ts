/**
 * One NATS connection per process (per role), and the JetStream streams every
 * process expects.
 *
 * Each connection authenticates as one role (src/wire/permissions.ts) with
 * NATS_CREDS (an nkey seed file, or a .creds file with a JWT), or NATS_USER
 * and NATS_PASSWORD, over TLS when NATS_TLS_* say so. It receives its replies
 * under its role's inbox prefix, the only inbox its permissions allow.
 *
 * On a server that requires credentials only the coordinator declares the
 * streams (agents and the API may not). On a server that requires none,
 * whoever connects first declares them, so start order does not matter, and
 * every process warns at start that anyone can reach the cluster.
 */
import { readFileSync } from 'node:fs';
import {
  connect,
  credsAuthenticator,
  errors as natsErrors,
  nanos,
  nkeyAuthenticator,
  type Authenticator,
  type NatsConnection,
} from '@nats-io/transport-node';
import {
  jetstream,
  jetstreamManager,
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { topology, type Topology } from './subjects.ts';
import { inboxPrefix, type Role } from './permissions.ts';

export interface Bus {
  /** Subjects and stream names of this installation. */
  t: Topology;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** The server demands credentials: permissions apply, and only the coordinator manages streams and consumers. */
  secured: boolean;
  close(): Promise<void>;
}

/** How a connection proves who it is (all optional: a server without auth needs none). */
export interface NatsAuth {
  /** NATS_CREDS: an nkey seed file (what `scalar nats-config` writes) or a NATS .creds file (JWT and seed). */
  credsFile?: string;
  user?: string;
  password?: string;
  /** NATS_TLS_CA, NATS_TLS_CERT, NATS_TLS_KEY: any of them turns TLS on. */
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
}

export interface BusOptions {
  url: string;
  /** Shown in the server's connection list, e.g. `scalar-agent node-a`. */
  name: string;
  /** SCALAR_NATS_PREFIX: namespaces subjects and streams. */
  prefix: string;
  logRetentionHours: number;
  logMaxMb: number;
  /** Give up connecting after this long (default 5 s); reconnects after that are unlimited. */
  connectTimeoutMs?: number;
  /** Which credential this is; decides the inbox prefix and whether it may declare streams. */
  role: Role;
  /** The agent's node id (role `agent`). */
  nodeId?: string;
  auth?: NatsAuth;
  /**
   * The server closed the connection for good, not this process: after it
   * refused the credential twice on reconnect (a revoked or replaced key).
   * Processes exit on it, so their supervisor or operator sees why.
   */
  onClosed?: (err: Error) => void;
  /**
   * How often to ping the server (default: the client's 2 minutes). A
   * connection whose pings go unanswered twice is treated as dropped, so a
   * half-open connection (a partition without a FIN) is noticed within about
   * three of these. The coordinator sets it from SCALAR_NODE_LOST_SEC.
   */
  pingIntervalMs?: number;
}

export class BusUnavailableError extends Error {
  constructor(url: string, cause: unknown, hint = '') {
    super(`cannot reach NATS at ${url}: ${(cause as Error)?.message ?? cause}${hint}`);
    this.name = 'BusUnavailableError';
  }
}

/** The server refused this process's credentials, or demanded some it was not given. */
export class BusAuthError extends Error {
  constructor(url: string, role: Role, given: boolean, detail: string) {
    super(
      given
        ? `NATS at ${url} refused the ${role} credentials (${detail}): check NATS_CREDS (or NATS_USER/NATS_PASSWORD), and that the server's config lists this credential (docs/security.md)`
        : `NATS at ${url} requires credentials and this ${role} was given none (${detail}): set NATS_CREDS to its credentials file (scalar nats-config writes one per role)`,
    );
    this.name = 'BusAuthError';
  }
}

/** A credentials file could not be used (missing, unreadable, or neither a seed nor a .creds file). */
export class CredentialsFileError extends Error {
  constructor(file: string, why: string) {
    super(`NATS_CREDS=${file}: ${why}`);
    this.name = 'CredentialsFileError';
  }
}

/** The authenticator for a credentials file: a .creds file (JWT and seed) or a bare user nkey seed. */
export function authenticatorFor(file: string): Authenticator {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CredentialsFileError(file, `cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (text.includes('-----BEGIN NATS USER JWT-----')) return credsAuthenticator(new TextEncoder().encode(text));
  const seed = text.trim();
  if (!/^SU[A-Z2-7]{56}$/.test(seed)) throw new CredentialsFileError(file, 'neither a NATS .creds file nor a user nkey seed (SU…)');
  return nkeyAuthenticator(new TextEncoder().encode(seed));
}

function hasCredentials(auth: NatsAuth | undefined): boolean {
  return Boolean(auth?.credsFile || auth?.user);
}

const DAY_MS = 24 * 3600 * 1000;

type StreamSpec = Partial<StreamConfig> & { name: string };

/** The stream definitions, from the config. Exported for tests and `docs/`. */
export function streamConfigs(t: Topology, opts: Pick<BusOptions, 'logRetentionHours' | 'logMaxMb'>): StreamSpec[] {
  const workQueue = (name: string, subjects: string[]): StreamSpec => ({
    name,
    subjects,
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    // Unhandled work is kept a week at most: long enough to survive any outage.
    max_age: nanos(7 * DAY_MS),
    duplicate_window: nanos(2 * 60 * 1000),
  });
  return [
    workQueue(t.streams.JOBS, [t.subjects.jobsAll]),
    workQueue(t.streams.NODE_CMDS, [t.subjects.allNodeCmds]),
    workQueue(t.streams.NODE_EVENTS, [t.subjects.allNodeEvents]),
    {
      name: t.streams.LOGS,
      subjects: [t.subjects.allLogs],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_age: nanos(opts.logRetentionHours * 3600 * 1000),
      max_bytes: opts.logMaxMb * 1024 * 1024,
      // Agents publish each line with a message id, so a line re-read after an agent restart is stored once.
      duplicate_window: nanos(2 * 60 * 1000),
    },
  ];
}

export async function ensureStreams(
  jsm: JetStreamManager,
  t: Topology,
  opts: Pick<BusOptions, 'logRetentionHours' | 'logMaxMb'>,
): Promise<void> {
  for (const cfg of streamConfigs(t, opts)) {
    try {
      await jsm.streams.info(cfg.name);
      // Exists: bring the mutable limits in line with this config (retention cannot change).
      const { retention: _r, storage: _s, ...mutable } = cfg;
      await jsm.streams.update(cfg.name, mutable);
    } catch (err) {
      if (!/stream not found/i.test((err as Error).message)) throw err;
      await jsm.streams.add(cfg).catch((e: Error) => {
        // Another process created it between our info and add: fine.
        if (!/already in use|exists/i.test(e.message)) throw e;
      });
    }
  }
}

export async function connectBus(opts: BusOptions, log: Logger): Promise<Bus> {
  const t = topology(opts.prefix);
  const auth = opts.auth ?? {};
  const tls = auth.tls && (auth.tls.caFile || auth.tls.certFile || auth.tls.keyFile) ? auth.tls : undefined;
  if (tls && Boolean(tls.certFile) !== Boolean(tls.keyFile)) {
    throw new Error('NATS_TLS_CERT and NATS_TLS_KEY go together: set both for a client certificate, or neither');
  }
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: opts.url.replace(/^(nats|tls):\/\//, ''),
      name: opts.name,
      timeout: opts.connectTimeoutMs ?? 5000,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      inboxPrefix: inboxPrefix(t, opts.role, opts.nodeId),
      ...(opts.pingIntervalMs ? { pingInterval: opts.pingIntervalMs, maxPingOut: 2 } : {}),
      ...(auth.credsFile ? { authenticator: authenticatorFor(auth.credsFile) } : {}),
      ...(auth.user ? { user: auth.user, pass: auth.password ?? '' } : {}),
      ...(tls ? { tls: { caFile: tls.caFile, certFile: tls.certFile, keyFile: tls.keyFile } } : {}),
    });
  } catch (err) {
    if (err instanceof CredentialsFileError) throw err;
    if (err instanceof natsErrors.AuthorizationError || /authorization|authentication/i.test((err as Error)?.message ?? '')) {
      throw new BusAuthError(opts.url, opts.role, hasCredentials(auth), (err as Error).message);
    }
    // A server that verifies clients drops a TLS handshake without a certificate: the client only sees a timeout.
    const hint = tls && !tls.certFile ? ' (if the server verifies clients, set NATS_TLS_CERT and NATS_TLS_KEY)' : '';
    throw new BusUnavailableError(opts.url, err, hint);
  }
  const secured = nc.info?.auth_required === true;
  if (!secured) {
    log.warn(
      { server: opts.url, role: opts.role },
      `NATS at ${opts.url} accepts clients without credentials: anyone who reaches it can run commands on the agents and forge their events. ` +
        'Use `scalar nats-config` for an authenticated server (docs/security.md)',
    );
  }
  // Only the coordinator manages streams on a secured server; others may not even ask for the account's info.
  const manages = opts.role === 'coordinator' || !secured;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') log.warn({ server: opts.url }, 'NATS connection lost; reconnecting');
      else if (s.type === 'reconnect') log.info({ server: opts.url }, 'NATS connection restored');
      else if (s.type === 'error') log.warn({ err: s.error }, 'NATS error');
    }
  })().catch(() => undefined);
  const jsm = await jetstreamManager(nc, { timeout: 10_000, checkAPI: manages });
  if (manages) await ensureStreams(jsm, t, opts);
  const js = jetstream(nc, { timeout: 10_000 });
  let closing = false;
  void nc.closed().then((err) => {
    if (closing) return;
    const why = err instanceof Error ? err : new Error('the connection was closed');
    log.error({ server: opts.url, role: opts.role, err: why }, `NATS closed this ${opts.role}'s connection for good: ${why.message}`);
    opts.onClosed?.(why);
  });
  return {
    t,
    nc,
    js,
    jsm,
    secured,
    async close() {
      closing = true;
      if (nc.isClosed()) return;
      await nc.drain().catch(() => nc.close());
    },
  };
}

export interface BusConfig {
  NATS_URL: string;
  NATS_CREDS?: string;
  NATS_USER?: string;
  NATS_PASSWORD?: string;
  NATS_TLS_CA?: string;
  NATS_TLS_CERT?: string;
  NATS_TLS_KEY?: string;
  SCALAR_NATS_PREFIX: string;
  SCALAR_LOG_RETENTION_HOURS: number;
  SCALAR_LOG_MAX_MB: number;
}

/** Bus options from the process config, for one role (and, for an agent, its node id). */
export function busOptions(cfg: BusConfig, name: string, role: Role, nodeId?: string, onClosed?: (err: Error) => void): BusOptions {
  return {
    onClosed,
    url: cfg.NATS_URL,
    name,
    prefix: cfg.SCALAR_NATS_PREFIX,
    logRetentionHours: cfg.SCALAR_LOG_RETENTION_HOURS,
    logMaxMb: cfg.SCALAR_LOG_MAX_MB,
    role,
    nodeId,
    auth: {
      credsFile: cfg.NATS_CREDS || undefined,
      user: cfg.NATS_USER || undefined,
      password: cfg.NATS_PASSWORD || undefined,
      tls: { caFile: cfg.NATS_TLS_CA || undefined, certFile: cfg.NATS_TLS_CERT || undefined, keyFile: cfg.NATS_TLS_KEY || undefined },
    },
  };
}
