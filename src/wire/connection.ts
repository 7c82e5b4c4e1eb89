/**
 * One NATS connection per process, and the JetStream streams every process
 * expects. Streams are declared idempotently by whoever connects first
 * (api, coordinator or agent), so start order does not matter.
 */
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
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

export interface Bus {
  /** Subjects and stream names of this installation. */
  t: Topology;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  close(): Promise<void>;
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
}

export class BusUnavailableError extends Error {
  constructor(url: string, cause: unknown) {
    super(`cannot reach NATS at ${url}: ${(cause as Error)?.message ?? cause}`);
    this.name = 'BusUnavailableError';
  }
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
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: opts.url.replace(/^nats:\/\//, ''),
      name: opts.name,
      timeout: opts.connectTimeoutMs ?? 5000,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
    });
  } catch (err) {
    throw new BusUnavailableError(opts.url, err);
  }
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') log.warn({ server: opts.url }, 'NATS connection lost; reconnecting');
      else if (s.type === 'reconnect') log.info({ server: opts.url }, 'NATS connection restored');
      else if (s.type === 'error') log.warn({ err: s.error }, 'NATS error');
    }
  })().catch(() => undefined);
  const jsm = await jetstreamManager(nc, { timeout: 10_000 });
  const t = topology(opts.prefix);
  await ensureStreams(jsm, t, opts);
  const js = jetstream(nc, { timeout: 10_000 });
  return {
    t,
    nc,
    js,
    jsm,
    async close() {
      if (nc.isClosed()) return;
      await nc.drain().catch(() => nc.close());
    },
  };
}

/** Bus options from the process config. */
export function busOptions(
  cfg: { NATS_URL: string; SCALAR_NATS_PREFIX: string; SCALAR_LOG_RETENTION_HOURS: number; SCALAR_LOG_MAX_MB: number },
  name: string,
): BusOptions {
  return {
    url: cfg.NATS_URL,
    name,
    prefix: cfg.SCALAR_NATS_PREFIX,
    logRetentionHours: cfg.SCALAR_LOG_RETENTION_HOURS,
    logMaxMb: cfg.SCALAR_LOG_MAX_MB,
  };
}
