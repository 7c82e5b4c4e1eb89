/**
 * `scalar dev` (what `npm start` runs): the whole system on embedded
 * defaults in one process tree:
 *   - PostgreSQL: DATABASE_URL, or an embedded server under SCALAR_DATA_DIR;
 *   - NATS: when NATS_URL is unset, a nats-server of its own that demands
 *     credentials (dev-nats.ts): one per role under SCALAR_DATA_DIR/nats-auth,
 *     never an unauthenticated server that happens to answer on 4222; with
 *     NATS_URL, that server, on NATS_CREDS;
 *   - the API, the coordinator, and three simulated nodes
 *     (fast-1 and fast-2 with 8×80 GB, flex-1 with 8×40 GB).
 * It prints the URL, an admin key and a curl that submits a job. Ctrl-C stops everything.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import { startSimulatedAgents, type SimulatedNode } from '../../actors/agent/simulated-fleet.ts';
import { busOptions, connectBus } from '../wire/connection.ts';
import { openDatabase, type Database } from '../db/database.ts';
import { createLogger } from '../logger/index.ts';
import { startApi } from '../api/server.ts';
import { ensureAdminAccess } from './bootstrap.ts';
import { fatal, loadConfig, onShutdown } from './common.ts';
import { CommandVerifier } from '../wire/signing.ts';
import { devSigner, launchCoordinator } from './coordinator.ts';
import { devNats } from './dev-nats.ts';
import type { Role } from '../wire/permissions.ts';

/** Whether this is the build (`npm run build` emits .js into dist/) or the sources run through tsx (bin/scalar.mjs chooses). */
const COMPILED = import.meta.url.endsWith('.js');

/** The simulated fleet of `scalar dev`. */
export const DEV_NODES: readonly SimulatedNode[] = [
  { id: 'fast-1', pool: 'fast', gpus: '8x80', cpu: 96, ramGb: 1024 },
  { id: 'fast-2', pool: 'fast', gpus: '8x80', cpu: 96, ramGb: 1024 },
  { id: 'flex-1', pool: 'flex', gpus: '8x40', cpu: 64, ramGb: 512 },
];

/** Waits (up to 10 s) until the coordinator has recorded every dev node as ready, so the banner comes last. */
async function waitForNodes(db: Database, ids: string[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const rows = await db.orm.em.fork().execute(`select count(*)::int as n from nodes where state = 'ready' and id in (${ids.map(() => '?').join(',')})`, ids);
    if (Number(rows[0]?.n) === ids.length) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function runDev(opts: { speed: number }): Promise<void> {
  const loaded = loadConfig();
  // The whole product on one machine: the autoscaler buys from the simulated marketplace unless told otherwise.
  const cfg = process.env.SCALAR_AUTOSCALE === undefined || process.env.SCALAR_AUTOSCALE === '' ? Object.freeze({ ...loaded, SCALAR_AUTOSCALE: true }) : loaded;
  const log: Logger = createLogger(cfg, { pretty: true });
  const cleanups: Array<() => Promise<void>> = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c().catch((err) => log.warn({ err }, 'while stopping'));
  };
  try {
    // First: a key it cannot read stops it before it has started anything.
    const signer = await devSigner(cfg, log);
    const db = await openDatabase(cfg, log);
    cleanups.push(() => db.close());
    const nats = await devNats(cfg, log, DEV_NODES.map((n) => n.id));
    cleanups.push(() => nats.stop());
    const connect = async (role: Role, nodeId?: string) => {
      const bus = await connectBus(busOptions({ ...cfg, ...nats.env(role, nodeId) }, `scalar-dev ${nodeId ?? role}`, nats.shared ? 'coordinator' : role, nodeId, () => void cleanup().finally(() => process.exit(1))), log);
      cleanups.push(() => bus.close());
      return bus;
    };
    // Its own server: each role on its own credential, as in production. A server at NATS_URL: one connection for all.
    const coordinatorBus = await connect('coordinator');
    const apiBus = nats.shared ? coordinatorBus : await connect('api');

    const access = await ensureAdminAccess(cfg, db, log, { createDevAdmin: true });
    const api = await startApi(cfg, db, log, { bus: apiBus });
    cleanups.push(() => api.close());
    const coordinator = await launchCoordinator(cfg, db, coordinatorBus, log.child({ component: 'coordinator' }), (err) => {
      log.fatal({ err }, 'the coordinator lost its leader lock; stopping');
      void cleanup().finally(() => process.exit(1));
    }, {
      signer,
      simulatedSpeed: opts.speed,
      // One machine, nothing between the nodes and the coordinator: a stopped dev node is lost within seconds.
      nodeLostAfterMs: process.env.SCALAR_NODE_LOST_SEC ? undefined : 3 * cfg.SCALAR_HEARTBEAT_INTERVAL_MS,
    });
    cleanups.push(() => coordinator.stop());
    await coordinator.running.leading;

    const verifier = new CommandVerifier([signer.publicKey]);
    for (const node of DEV_NODES) {
      const [agent] = await startSimulatedAgents([node], {
        bus: nats.shared ? coordinatorBus : await connect('agent', node.id),
        verifier,
        log,
        stateRoot: path.join(cfg.SCALAR_DATA_DIR, 'agent'),
        heartbeatIntervalMs: cfg.SCALAR_HEARTBEAT_INTERVAL_MS,
        speed: opts.speed,
      });
      cleanups.push(() => agent!.stop());
    }

    onShutdown(log, cfg.SCALAR_SHUTDOWN_GRACE_MS, cleanup);
    await waitForNodes(db, DEV_NODES.map((n) => n.id));

    const key = access.adminKey;
    const body = JSON.stringify({
      tier: 'FAST',
      gpu_count: 2,
      vram_per_gpu_gb: 40,
      expected_duration_sec: 30,
      image: 'pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime',
      command: ['python', 'train.py'],
    });
    const lines = [
      '',
      `  Scalar       ${api.url}`,
      `  API docs     ${api.url}/docs`,
      `  Database     ${db.embedded ? `embedded PostgreSQL (data in ${cfg.SCALAR_DATA_DIR})` : 'DATABASE_URL'}`,
      `  NATS         ${nats.describe}`,
      `  Nodes        ${DEV_NODES.map((n) => `${n.id} (${n.pool}, ${n.gpus})`).join(', ')}: simulated${opts.speed !== 1 ? `, ${opts.speed}× speed` : ''}`,
      key ? `  Admin key    ${key}   (${access.note})` : `  Admin key    ${access.note}`,
      `  Capacity     ${cfg.SCALAR_PROVIDER === 'simulated' ? `simulated marketplace; autoscaler ${cfg.SCALAR_AUTOSCALE ? 'on' : 'off'} (GET /capacity, /capacity/blocks, /capacity/events)` : 'no provider'}`,
      ...(coordinator.inspection ? [`  Inspector    ${coordinator.inspection.url}`] : []),
      `  Code         ${COMPILED ? 'compiled (dist/)' : 'TypeScript sources (tsx)'}`,
      '',
      '  Submit a job:',
      `    curl -s -X POST ${api.url}/jobs -H "Authorization: Bearer ${key ?? '<your admin key>'}" \\`,
      `      -H "Content-Type: application/json" -d '${body}'`,
      '  Then: GET /jobs/<id>, /jobs/<id>/logs, /nodes.   Ctrl-C stops everything.',
      '',
    ];
    process.stdout.write(lines.join('\n') + '\n');
  } catch (err) {
    await cleanup();
    await fatal(log, err);
  }
}
