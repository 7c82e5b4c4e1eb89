/**
 * `scalar agent`: the node agent as a process. Discovers (or is told) the
 * node's GPUs, connects to NATS, registers and runs what the coordinator
 * sends until SIGTERM/SIGINT; then it stops gracefully (running jobs keep
 * running; the next agent re-attaches them) and exits 0.
 *
 * It carries out only commands signed by a key of SCALAR_COORDINATOR_KEYS
 * (src/wire/signing.ts). Invalid options, that variable unset or a key in it
 * invalid, exit 2 with one line on stderr; an unreachable NATS or a failed
 * start exits 1.
 */
import { cpus, hostname, totalmem } from 'node:os';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { Agent } from '../../actors/agent/agent.ts';
import { BusAuthError, BusUnavailableError, CredentialsFileError, busOptions, connectBus, type Bus } from '../wire/connection.ts';
import { CommandVerifier, parsePublicKeys, SigningKeyError } from '../wire/signing.ts';
import { NODE_ID_PATTERN } from '../wire/subjects.ts';
import type { Config } from '../config/index.ts';
import { exitOnBusClosed, loadConfig } from './common.ts';
import { POOLS, type GpuInfo, type Pool } from '../domain/cluster.ts';
import { createLogger } from '../logger/index.ts';
import { createRuntime, discoverGpus, parseGpuSpec, RUNTIME_KINDS, type RuntimeKind } from '../runtimes/index.ts';

export interface AgentCliOptions {
  nodeId?: string;
  pool?: string;
  gpus?: string;
  cpu?: string;
  ramGb?: string;
  runtime?: string;
  speed?: string;
  stateDir?: string;
  block?: string;
  addr?: string;
}

/** Invalid command-line input: exit 2. */
export class AgentOptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentOptionError';
  }
}

/** The host name as a node id: characters outside NODE_ID_PATTERN become '-', at most 63. */
export function defaultNodeId(host: string = hostname()): string {
  let id = host.replace(/[^A-Za-z0-9_-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 63);
  id = id.replace(/[-_]+$/, '');
  return NODE_ID_PATTERN.test(id) ? id : 'node';
}

export interface ResolvedAgentOptions {
  nodeId: string;
  pool: Pool;
  /** null: discover with nvidia-smi. */
  gpus: GpuInfo[] | null;
  cpuCores: number;
  ramGb: number;
  runtime: RuntimeKind;
  speed: number;
  stateDir: string;
  blockId: string | null;
  addr: string | undefined;
}

function positive(name: string, raw: string): number {
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v) || v <= 0) throw new AgentOptionError(`${name} must be a positive number, not ${JSON.stringify(raw)}`);
  return v;
}

/** Validates the options (everything but GPU discovery). Throws AgentOptionError. */
export function resolveAgentOptions(opts: AgentCliOptions, cfg: Pick<Config, 'SCALAR_DATA_DIR'>): ResolvedAgentOptions {
  let nodeId: string;
  if (opts.nodeId !== undefined) {
    if (!NODE_ID_PATTERN.test(opts.nodeId)) {
      throw new AgentOptionError(
        `--node-id ${JSON.stringify(opts.nodeId)} is invalid: use 1 to 63 letters, digits, _ or -, starting with a letter or digit`,
      );
    }
    nodeId = opts.nodeId;
  } else {
    nodeId = defaultNodeId();
  }
  const pool = (opts.pool ?? 'fast') as Pool;
  if (!POOLS.includes(pool)) throw new AgentOptionError(`--pool must be one of ${POOLS.join(', ')}, not ${JSON.stringify(opts.pool)}`);
  const runtime = (opts.runtime ?? 'process') as RuntimeKind;
  if (!RUNTIME_KINDS.includes(runtime)) {
    throw new AgentOptionError(`--runtime must be one of ${RUNTIME_KINDS.join(', ')}, not ${JSON.stringify(opts.runtime)}`);
  }
  let speed = 1;
  if (opts.speed !== undefined) {
    if (runtime !== 'simulated') throw new AgentOptionError('--speed applies only to --runtime simulated');
    speed = positive('--speed', opts.speed);
  }
  let gpus: GpuInfo[] | null = null;
  if (opts.gpus !== undefined) {
    try {
      gpus = parseGpuSpec(opts.gpus);
    } catch (err) {
      throw new AgentOptionError(`--gpus: ${(err as Error).message}`);
    }
  }
  const cpuCores = opts.cpu !== undefined ? positive('--cpu', opts.cpu) : Math.max(1, cpus().length);
  const ramGb = opts.ramGb !== undefined ? positive('--ram-gb', opts.ramGb) : Math.max(0.1, Math.round((totalmem() / 2 ** 30) * 10) / 10);
  const stateDir = resolve(opts.stateDir ?? join(cfg.SCALAR_DATA_DIR, 'agent', nodeId));
  const blockId = opts.block ?? null;
  if (blockId !== null && !NODE_ID_PATTERN.test(blockId)) throw new AgentOptionError(`--block ${JSON.stringify(blockId)} is invalid: use letters, digits, _ or -`);
  const addr = opts.addr?.trim();
  if (addr !== undefined && (addr === '' || addr.length > 255 || /\s/.test(addr))) throw new AgentOptionError(`--addr must be a host name or IP address, not ${JSON.stringify(opts.addr)}`);
  return { nodeId, pool, gpus, cpuCores, ramGb, runtime, speed, stateDir, blockId, addr };
}

/** The coordinator keys this agent accepts (SCALAR_COORDINATOR_KEYS). Throws AgentOptionError, one line naming the variable. */
export function resolveVerifier(cfg: Pick<Config, 'SCALAR_COORDINATOR_KEYS' | 'SCALAR_COORDINATOR_KEYS_FILE'>): CommandVerifier {
  try {
    if (cfg.SCALAR_COORDINATOR_KEYS !== undefined && cfg.SCALAR_COORDINATOR_KEYS_FILE !== undefined) {
      throw new SigningKeyError('set SCALAR_COORDINATOR_KEYS or SCALAR_COORDINATOR_KEYS_FILE, not both');
    }
    if (cfg.SCALAR_COORDINATOR_KEYS_FILE !== undefined) {
      let text: string;
      try {
        text = readFileSync(cfg.SCALAR_COORDINATOR_KEYS_FILE, 'utf8');
      } catch (err) {
        throw new SigningKeyError(`SCALAR_COORDINATOR_KEYS_FILE: cannot read ${cfg.SCALAR_COORDINATOR_KEYS_FILE} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
      // One key per line (or comma-separated), as `scalar signing-key show` prints it.
      return new CommandVerifier(parsePublicKeys(text.split(/[\s,]+/).join(','), 'SCALAR_COORDINATOR_KEYS_FILE'));
    }
    return new CommandVerifier(parsePublicKeys(cfg.SCALAR_COORDINATOR_KEYS));
  } catch (err) {
    if (err instanceof SigningKeyError) throw new AgentOptionError(err.message);
    throw err;
  }
}

/** The GPUs: as given, else from nvidia-smi. Throws AgentOptionError when neither is available. */
export async function resolveGpus(given: GpuInfo[] | null): Promise<GpuInfo[]> {
  if (given) return given;
  let found: GpuInfo[] | null;
  try {
    found = await discoverGpus();
  } catch (err) {
    throw new AgentOptionError(`GPU discovery failed (${(err as Error).message.split('\n')[0]}); pass --gpus, e.g. --gpus 8x80`);
  }
  if (found === null) throw new AgentOptionError('no --gpus given and nvidia-smi is not installed: pass --gpus, e.g. --gpus 8x80 or --gpus 4x40,4x80');
  return found;
}


function flushAndExit(log: Logger, code: number): void {
  log.flush(() => process.exit(code));
}

export async function runAgent(raw: AgentCliOptions): Promise<void> {
  const cfg = loadConfig();
  let opts: ResolvedAgentOptions;
  let gpus: GpuInfo[];
  let verifier: CommandVerifier;
  try {
    opts = resolveAgentOptions(raw, cfg);
    verifier = resolveVerifier(cfg);
    gpus = await resolveGpus(opts.gpus);
  } catch (err) {
    if (err instanceof AgentOptionError) {
      process.stderr.write(`scalar agent: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(cfg);

  let bus: Bus;
  try {
    bus = await connectBus(busOptions(cfg, `scalar-agent ${opts.nodeId}`, 'agent', opts.nodeId, exitOnBusClosed(log)), log);
  } catch (err) {
    const msg = err instanceof BusUnavailableError || err instanceof BusAuthError || err instanceof CredentialsFileError ? err.message : `cannot set up NATS at ${cfg.NATS_URL}: ${(err as Error).message}`;
    process.stderr.write(`scalar agent: ${msg}\n`);
    log.flush(() => process.exit(1));
    return;
  }

  const agent = new Agent({
    nodeId: opts.nodeId,
    pool: opts.pool,
    gpus,
    cpuCores: opts.cpuCores,
    ramGb: opts.ramGb,
    blockId: opts.blockId,
    addr: opts.addr,
    runtime: createRuntime(opts.runtime, { speed: opts.speed }),
    stateDir: opts.stateDir,
    heartbeatIntervalMs: cfg.SCALAR_HEARTBEAT_INTERVAL_MS,
    bus,
    verifier,
    log,
  });

  let stoppingSince = 0;
  const shutdown = (signal: string) => {
    if (stoppingSince) {
      // Ctrl-C under npm delivers SIGINT twice at once; only a later one forces the exit.
      if (Date.now() - stoppingSince < 1000) return;
      log.warn({ signal }, 'second signal: exiting now');
      flushAndExit(log, 1);
      return;
    }
    stoppingSince = Date.now();
    log.info({ signal, node_id: opts.nodeId }, 'stopping the agent; running jobs keep running');
    const force = setTimeout(() => {
      log.error('agent did not stop within 30 s; exiting');
      flushAndExit(log, 1);
    }, 30_000);
    force.unref();
    agent
      .stop()
      .then(() => bus.close())
      .then(
        () => {
          log.info({ node_id: opts.nodeId }, 'Scalar agent stopped');
          flushAndExit(log, 0);
        },
        (err) => {
          log.error({ err }, 'error while stopping the agent');
          flushAndExit(log, 1);
        },
      );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  try {
    await agent.start();
  } catch (err) {
    log.fatal({ err, node_id: opts.nodeId }, `agent failed to start: ${(err as Error).message}`);
    await agent.stop().catch(() => undefined);
    await bus.close().catch(() => undefined);
    flushAndExit(log, 1);
    return;
  }
  if (stoppingSince) return;
  log.info(
    {
      node_id: opts.nodeId,
      pool: opts.pool,
      runtime: opts.runtime,
      gpus: gpus.length,
      cpu_cores: opts.cpuCores,
      ram_gb: opts.ramGb,
      state_dir: opts.stateDir,
      boot_id: agent.bootId,
    },
    'Scalar agent ready',
  );
}
