import type { Logger } from 'pino';
import type { Config } from '../config/index.ts';
import type { Database } from '../db/database.ts';
import { openDatabase } from '../db/database.ts';
import { createLogger } from '../logger/index.ts';
import { busOptions, connectBus, type Bus } from '../wire/connection.ts';
import { join } from 'node:path';
import { access } from 'node:fs/promises';
import { createSeedFile, loadSigner, SigningKeyError, type CommandSigner } from '../wire/signing.ts';
import { startCoordinator, type RunningCoordinator } from '../../actors/coordinator/index.ts';
import { startInspection, type Inspection } from '../../actors/coordinator/inspect.ts';
import { schedulingFromConfig } from '../../actors/coordinator/settings.ts';
import { exitOnBusClosed, fatal, loadConfig, onShutdown } from './common.ts';

export interface CoordinatorProcess {
  running: RunningCoordinator;
  inspection?: Inspection;
  stop(): Promise<void>;
}

/**
 * The coordinator's signing key (SCALAR_SIGNING_KEY_FILE, SCALAR_COMMAND_TTL_SEC).
 * When it is unset or unusable the process exits 1 with one line naming the
 * variable, before it connects to anything.
 */
export async function signerOrExit(cfg: Config, file = cfg.SCALAR_SIGNING_KEY_FILE): Promise<CommandSigner> {
  try {
    return await loadSigner(file, cfg.SCALAR_COMMAND_TTL_SEC * 1000);
  } catch (err) {
    if (!(err instanceof SigningKeyError)) throw err;
    process.stderr.write(`scalar: ${err.message}\n`);
    process.exit(1);
  }
}

/**
 * `scalar dev`'s signing key: SCALAR_SIGNING_KEY_FILE when set, otherwise
 * SCALAR_DATA_DIR/signing.nk, created (0600) when missing, so `npm start`
 * needs nothing configured. Its agents run in the same process and accept it.
 */
export async function devSigner(cfg: Config, log: Logger): Promise<CommandSigner> {
  if (cfg.SCALAR_SIGNING_KEY_FILE) return signerOrExit(cfg);
  const file = join(cfg.SCALAR_DATA_DIR, 'signing.nk');
  const exists = await access(file).then(() => true, () => false);
  if (!exists) log.info({ file, public_key: (await createSeedFile(file)).publicKey }, 'created the signing key of node commands');
  return signerOrExit(cfg, file);
}

/**
 * How often the coordinator pings NATS: a quarter of SCALAR_NODE_LOST_SEC,
 * at most 10 s. Two unanswered pings drop the connection, so a partition that
 * leaves it half-open is noticed in well under the lost timeout, and the
 * coordinator stops counting missed heartbeats before any node could be lost.
 */
export function coordinatorPingMs(cfg: Pick<Config, 'SCALAR_NODE_LOST_SEC'>): number {
  return Math.min(10_000, (cfg.SCALAR_NODE_LOST_SEC * 1000) / 4);
}

/** The coordinator over an open database and bus (shared by `scalar coordinator` and `scalar dev`). */
export async function launchCoordinator(
  cfg: Config,
  db: Database,
  bus: Bus,
  log: Logger,
  onLeadershipLost: (err: Error) => void,
  opts: { signer: CommandSigner; simulatedSpeed?: number; /** Overrides SCALAR_NODE_LOST_SEC (`scalar dev`). */ nodeLostAfterMs?: number },
): Promise<CoordinatorProcess> {
  const inspection = cfg.SCALAR_INSPECT
    ? await startInspection({ port: cfg.SCALAR_INSPECT_PORT, host: cfg.SCALAR_INSPECT_HOST, token: cfg.SCALAR_INSPECT_TOKEN }, log)
    : undefined;
  const running = startCoordinator({
    orm: db.orm,
    databaseUrl: db.url,
    bus,
    signer: opts.signer,
    log,
    heartbeatIntervalMs: cfg.SCALAR_HEARTBEAT_INTERVAL_MS,
    evictionHoldShare: cfg.SCALAR_EVICTION_HOLD_SHARE,
    nodeLostAfterMs: opts.nodeLostAfterMs ?? cfg.SCALAR_NODE_LOST_SEC * 1000,
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
  const signer = await signerOrExit(cfg);
  const log = createLogger(cfg).child({ component: 'coordinator' });
  try {
    const db = await openDatabase(cfg, log);
    const bus = await connectBus(
      { ...busOptions(cfg, 'scalar-coordinator', 'coordinator', undefined, exitOnBusClosed(log)), pingIntervalMs: coordinatorPingMs(cfg) },
      log,
    ).catch(async (err) => {
      await db.close();
      throw err;
    });
    const proc = await launchCoordinator(cfg, db, bus, log, () => {
      // Another coordinator may be acting now: this one must not.
      log.flush(() => process.exit(1));
    }, { signer });
    onShutdown(log, cfg.SCALAR_SHUTDOWN_GRACE_MS, async () => {
      await proc.stop();
      await bus.close();
      await db.close();
    });
    await proc.running.leading;
    log.info({ signing_key: signer.publicKey, inspect: proc.inspection ? `http://${proc.inspection.address.address}:${proc.inspection.address.port}` : null }, 'Scalar coordinator ready');
  } catch (err) {
    await fatal(log, err);
  }
}
