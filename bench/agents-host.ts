/**
 * A process hosting N simulated agents (fast pool, 8 × 80 GB each), for
 * bench/e2e.ts: the agents get their own event loop instead of sharing the
 * load generator's. Reads the same environment as `scalar` (NATS_URL,
 * SCALAR_NATS_PREFIX, SCALAR_HEARTBEAT_INTERVAL_MS, SCALAR_COORDINATOR_KEYS). Prints "ready" once all
 * are registered; stops them on SIGTERM.
 *
 *   node --import tsx bench/agents-host.ts COUNT STATE_ROOT SPEED
 */
import pino from 'pino';
import { startSimulatedAgents } from '../actors/agent/simulated-fleet.ts';
import { busOptions, connectBus } from '../src/wire/connection.ts';
import { parseConfig } from '../src/config/index.ts';
import { CommandVerifier, parsePublicKeys } from '../src/wire/signing.ts';

const [count, stateRoot, speed] = [Number(process.argv[2]), process.argv[3]!, Number(process.argv[4] ?? 10)];
const cfg = parseConfig(process.env);
const log = pino({ level: 'warn' });
const bus = await connectBus(busOptions(cfg, 'scalar-bench-agents', 'coordinator'), log);
const agents = await startSimulatedAgents(
  Array.from({ length: count }, (_, i) => ({ id: `bench-${i}`, pool: 'fast' as const, gpus: '8x80', cpu: 128, ramGb: 2048 })),
  { bus, verifier: new CommandVerifier(parsePublicKeys(cfg.SCALAR_COORDINATOR_KEYS)), log, stateRoot, heartbeatIntervalMs: cfg.SCALAR_HEARTBEAT_INTERVAL_MS, speed },
);
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  void Promise.all(agents.map((a) => a.stop()))
    .then(() => bus.close())
    .finally(() => process.exit(0));
});
