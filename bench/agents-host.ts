/**
 * A process hosting N simulated agents (fast pool, 8 × 80 GB each), for
 * bench/e2e.ts: the agents get their own event loop instead of sharing the
 * load generator's. Reads the same environment as `scalar` (NATS_URL,
 * SCALAR_NATS_PREFIX, SCALAR_HEARTBEAT_INTERVAL_MS). Prints "ready" once all
 * are registered; stops them on SIGTERM.
 *
 *   node --import tsx bench/agents-host.ts COUNT STATE_ROOT SPEED
 */
import path from 'node:path';
import pino from 'pino';
import { Agent } from '../actors/agent/agent.ts';
import { busOptions, connectBus } from '../actors/bus/connection.ts';
import { parseConfig } from '../src/config/index.ts';
import { createRuntime, parseGpuSpec } from '../src/runtimes/index.ts';

const [count, stateRoot, speed] = [Number(process.argv[2]), process.argv[3]!, Number(process.argv[4] ?? 10)];
const cfg = parseConfig(process.env);
const log = pino({ level: 'warn' });
const bus = await connectBus(busOptions(cfg, 'scalar-bench-agents'), log);
const runtime = createRuntime('simulated', { speed });
const agents: Agent[] = [];
for (let i = 0; i < count; i++) {
  agents.push(
    new Agent({
      nodeId: `bench-${i}`,
      pool: 'fast',
      gpus: parseGpuSpec('8x80'),
      cpuCores: 128,
      ramGb: 2048,
      runtime,
      stateDir: path.join(stateRoot, `bench-${i}`),
      heartbeatIntervalMs: cfg.SCALAR_HEARTBEAT_INTERVAL_MS,
      bus,
      log,
    }),
  );
}
await Promise.all(agents.map((a) => a.start()));
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  void Promise.all(agents.map((a) => a.stop()))
    .then(() => bus.close())
    .finally(() => process.exit(0));
});
