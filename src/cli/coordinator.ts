import type { Logger } from 'pino';
import type { Config } from '../config/index.ts';
import type { Database } from '../db/database.ts';
import { openDatabase } from '../db/database.ts';
import { createLogger } from '../logger/index.ts';
import { busOptions, connectBus, type Bus } from '../wire/connection.ts';
import { startCoordinator, type RunningCoordinator } from '../../actors/coordinator/index.ts';
import { startInspection, type Inspection } from '../../actors/coordinator/inspect.ts';
import { schedulingFromConfig } from '../../actors/coordinator/settings.ts';
import { exitOnBusClosed, fatal, loadConfig, onShutdown } from './common.ts';

export interface CoordinatorProcess {
  running: RunningCoordinator;
  inspection?: Inspection;
  stop(): Promise<void>;
}

/** The coordinator over an open database and bus (shared by `scalar coordinator` and `scalar dev`). */
export async function launchCoordinator(
  cfg: Config,
  db: Database,
  bus: Bus,
  log: Logger,
  onLeadershipLost: (err: Error) => void,
  opts: { simulatedSpeed?: number } = {},
): Promise<CoordinatorProcess> {
  const inspection = cfg.SCALAR_INSPECT
    ? await startInspection({ port: cfg.SCALAR_INSPECT_PORT, host: cfg.SCALAR_INSPECT_HOST, token: cfg.SCALAR_INSPECT_TOKEN }, log)
    : undefined;
  const running = startCoordinator({
    orm: db.orm,
    databaseUrl: db.url,
    bus,
    log,
    heartbeatIntervalMs: cfg.SCALAR_HEARTBEAT_INTERVAL_MS,
    killGraceSec: cfg.SCALAR_KILL_GRACE_SEC,
    scheduling: schedulingFromConfig(cfg),
    capacity: { config: cfg, simulatedSpeed: opts.simulatedSpeed },
    inspect: inspection?.inspect,
    onLeadershipLost,
  });
  return {
    running,
    inspection,
    async stop() {
      await running.stop();
      await inspection?.stop();
    },
  };
}

/** `scalar coordinator`: one leader acts; more instances stand by and take over within seconds. */
export async function runCoordinator(): Promise<void> {
  const cfg = loadConfig();
  const log = createLogger(cfg).child({ component: 'coordinator' });
  try {
    const db = await openDatabase(cfg, log);
    const bus = await connectBus(busOptions(cfg, 'scalar-coordinator', 'coordinator', undefined, exitOnBusClosed(log)), log).catch(async (err) => {
      await db.close();
      throw err;
    });
    const proc = await launchCoordinator(cfg, db, bus, log, () => {
      // Another coordinator may be acting now: this one must not.
      log.flush(() => process.exit(1));
    });
    onShutdown(log, cfg.SCALAR_SHUTDOWN_GRACE_MS, async () => {
      await proc.stop();
      await bus.close();
      await db.close();
    });
    await proc.running.leading;
    log.info({ inspect: proc.inspection ? `http://${proc.inspection.address.address}:${proc.inspection.address.port}` : null }, 'Scalar coordinator ready');
  } catch (err) {
    await fatal(log, err);
  }
}
