import { readFileSync } from 'node:fs';
import { z } from 'zod';

/**
 * The one configuration schema. Every variable is read from the environment
 * once, coerced, validated and frozen. Each field documents its default; the
 * README table is written from the same descriptions.
 */
const positiveNumber = z.coerce.number().positive();
const positiveInt = z.coerce.number().int().positive();

export const configSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080).describe('TCP port of the REST API'),
  HOST: z.string().min(1).default('127.0.0.1').describe('Interface the REST API binds to (0.0.0.0 to listen on all)'),
  DATABASE_URL: z
    .url({ protocol: /^postgres(ql)?$/ })
    .optional()
    .describe('PostgreSQL URL. Unset: an embedded PostgreSQL is started with its data under SCALAR_DATA_DIR'),
  DATABASE_PASSWORD_FILE: z
    .string()
    .min(1)
    .optional()
    .describe("A file holding DATABASE_URL's password (docker secrets, docker-compose's generated password); it replaces any password in the URL"),
  SCALAR_DATA_DIR: z.string().min(1).default('./.scalar').describe('Where the embedded PostgreSQL keeps its data'),
  SCALAR_EMBEDDED_PG_PORT: z.coerce
    .number()
    .int()
    .min(1)
    .max(65535)
    .default(54329)
    .describe('Port of the embedded PostgreSQL (only when DATABASE_URL is unset)'),
  DB_POOL_MAX: positiveInt.default(10).describe('Maximum PostgreSQL connections per process'),
  NATS_URL: z
    .string()
    .min(1)
    .default('nats://127.0.0.1:4222')
    .describe('NATS server with JetStream (`scalar dev` starts its own, authenticated, when this is unset)'),
  NATS_CREDS: z
    .string()
    .min(1)
    .optional()
    .describe("This process's NATS credential: an nkey seed file (`scalar nats-config`, `scalar creds create`) or a NATS .creds file"),
  NATS_USER: z.string().min(1).optional().describe('NATS user name, for servers with user/password authorization (instead of NATS_CREDS)'),
  NATS_PASSWORD: z.string().optional().describe("NATS_USER's password"),
  NATS_TLS_CA: z.string().min(1).optional().describe("CA file that signed the NATS server's certificate; setting any NATS_TLS_* variable turns TLS on"),
  NATS_TLS_CERT: z.string().min(1).optional().describe('Client certificate for NATS servers that verify clients (with NATS_TLS_KEY)'),
  NATS_TLS_KEY: z.string().min(1).optional().describe("NATS_TLS_CERT's private key"),
  SCALAR_NATS_PREFIX: z
    .string()
    .regex(/^[a-z][a-z0-9_-]{0,31}$/, 'must be lowercase letters, digits, _ or -, starting with a letter')
    .default('scalar')
    .describe('Namespace of subjects (`<prefix>.…`) and streams (`<PREFIX>_…`), so installations can share a NATS server'),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('pino log level'),
  LOG_FORMAT: z
    .enum(['json', 'pretty'])
    .optional()
    .describe('json or pretty. Default: pretty under `scalar dev` / `npm start`, json otherwise'),
  SCALAR_BOOTSTRAP_KEY: z
    .string()
    .regex(/^sk_[A-Za-z0-9_-]{43,}$/, 'must be sk_ followed by at least 43 base64url characters (32 random bytes)')
    .optional()
    .describe('Ensures an admin API key with exactly this value exists (for scripts and tests)'),
  SCALAR_DEFAULT_CPU_CORES: positiveNumber.default(4).describe('cpu_cores of a job that omits it'),
  SCALAR_DEFAULT_RAM_GB: positiveNumber.default(16).describe('ram_gb of a job that omits it'),
  SCALAR_DEFAULT_VRAM_PER_GPU_GB: positiveNumber
    .max(1024)
    .default(16)
    .describe('vram_per_gpu_gb of a job that omits it'),
  SCALAR_DEFAULT_EXPECTED_DURATION_SEC: positiveInt
    .max(30 * 24 * 3600)
    .default(3600)
    .describe('expected_duration_sec of a job that omits it'),
  SCALAR_MAX_ATTEMPTS: positiveInt.max(100).default(3).describe('Attempts before a job that keeps losing its node fails'),
  SCALAR_SUBMIT_BATCH_MAX: positiveInt
    .max(5000)
    .default(500)
    .describe('Most job inserts group-committed in one transaction'),
  SCALAR_KEY_CACHE_TTL_SEC: z.coerce
    .number()
    .int()
    .min(0)
    .default(60)
    .describe('How long a verified API key is cached in memory (revocation evicts it at once)'),
  SCALAR_SHUTDOWN_GRACE_MS: positiveInt.default(10_000).describe('How long SIGTERM waits for in-flight requests'),
  SCALAR_HEARTBEAT_INTERVAL_MS: positiveInt
    .min(100)
    .default(2000)
    .describe('How often agents heartbeat; a node is lost after SCALAR_NODE_LOST_SEC without one'),
  SCALAR_NODE_LOST_SEC: positiveNumber
    .default(40)
    .describe("A node that sends no heartbeat for this long is lost and its jobs are requeued; at least 3 heartbeat intervals. `scalar dev`: 3 intervals unless set"),
  SCALAR_EVICTION_HOLD_SHARE: z.coerce
    .number()
    .gt(0)
    .max(1)
    .default(0.5)
    .describe('When more than this share of the nodes (and at least 2) miss the same heartbeat, no miss counts: a network or NATS fault, not dead nodes. 1 never holds'),
  SCALAR_KILL_GRACE_SEC: z.coerce
    .number()
    .min(0)
    .max(3600)
    .default(10)
    .describe('Seconds between SIGTERM and SIGKILL when a job is cancelled'),
  SCALAR_COORDINATOR_TIMEOUT_MS: positiveInt
    .default(5000)
    .describe('How long the API waits for the coordinator to commit a cancel before it answers 503 coordinator_unavailable (with Retry-After)'),
  // --- signed node commands (docs/security.md) ---
  SCALAR_SIGNING_KEY_FILE: z
    .string()
    .min(1)
    .optional()
    .describe('Coordinator: the file holding its nkey seed (SC…) that signs every command to agents; required by `scalar coordinator` (`scalar signing-key create FILE` makes one). `scalar dev` uses SCALAR_DATA_DIR/signing.nk, created when missing'),
  SCALAR_COMMAND_TTL_SEC: positiveInt
    .max(7 * 24 * 3600)
    .default(600)
    .describe('Coordinator: how long a signed command stays valid; agents refuse it after that, so their clocks must agree with the coordinator\'s to well within it (NTP)'),
  SCALAR_COORDINATOR_KEYS: z
    .string()
    .min(1)
    .optional()
    .describe('Agent: the coordinator public keys (C…, comma-separated; two while a key is rotated) whose signed commands it carries out; `scalar agent` requires it or SCALAR_COORDINATOR_KEYS_FILE'),
  SCALAR_COORDINATOR_KEYS_FILE: z
    .string()
    .min(1)
    .optional()
    .describe('Agent: a file with those public keys instead, one per line (what `scalar signing-key show` prints; docker-compose uses it)'),
  SCALAR_LOG_RETENTION_HOURS: positiveNumber.default(168).describe('How long job logs are kept in the LOGS stream'),
  SCALAR_LOG_MAX_MB: positiveInt.default(1024).describe('Most megabytes of job logs kept; the oldest go first'),
  SCALAR_INSPECT: z
    .enum(['0', '1'])
    .default('0')
    .transform((v) => v === '1')
    .describe('1: stream the coordinator\'s live actors to the Stately inspector (see README)'),
  SCALAR_INSPECT_PORT: z.coerce
    .number()
    .int()
    .min(1)
    .max(65535)
    .default(5678)
    .describe('WebSocket port of the inspector server when SCALAR_INSPECT=1'),
  SCALAR_INSPECT_HOST: z
    .string()
    .min(1)
    .max(255)
    .default('127.0.0.1')
    .describe('Address the inspector bridge listens on; any but loopback requires SCALAR_INSPECT_TOKEN'),
  SCALAR_INSPECT_TOKEN: z
    .string()
    .min(32, 'must be at least 32 characters')
    .max(512)
    .regex(/^[A-Za-z0-9._~-]+$/, 'must be URL-safe: letters, digits, . _ ~ -')
    .optional()
    .describe('Token the inspector page and its WebSocket must present (?token=); required when SCALAR_INSPECT_HOST is not loopback'),

  // --- placement, queue discipline, preemption (docs/scheduling.md) ---
  SCALAR_BLOCK_MARGIN_SEC: z.coerce
    .number()
    .min(0)
    .default(300)
    .describe('A job is placed on a node only if its block outlives now + expected_duration_sec + this margin'),
  SCALAR_PREEMPT_GRACE_SEC: z.coerce
    .number()
    .min(0)
    .max(3600)
    .default(30)
    .describe('Seconds between SIGTERM and SIGKILL when a FLEX job is preempted by a FAST job'),
  SCALAR_OVERRUN_FACTOR: z.coerce
    .number()
    .min(1)
    .default(2)
    .describe('fail: the time limit is expected_duration_sec × this factor. extend: each extension of an overrunning job\'s hold is expected_duration_sec × (factor − 1), at least 60 s'),
  SCALAR_OVERRUN_POLICY: z
    .enum(['fail', 'extend'])
    .default('extend')
    .describe('What happens to an overrunning job: fail (a time limit) or extend (its reservation is extended; it keeps running)'),
  SCALAR_SCHEDULER_POLICY: z
    .enum(['scalar', 'fifo-first-fit'])
    .default('scalar')
    .describe('scalar: fair share, backfill, preemption, scored placement. fifo-first-fit: strict arrival order, first fit (a baseline)'),

  // --- pricing ---
  SCALAR_PRICE_FAST_GPU_HOUR: positiveNumber.default(2.5).describe('Price of one FAST GPU-hour (USD), charged to users'),
  SCALAR_PRICE_FLEX_GPU_HOUR: positiveNumber.default(1).describe('Price of one FLEX GPU-hour (USD); must be below the FAST price'),

  // --- capacity and the autoscaler (docs/scheduling.md) ---
  SCALAR_PROVIDER: z
    .enum(['simulated', 'none'])
    .default('simulated')
    .describe('Where capacity blocks are bought: simulated (a built-in marketplace whose nodes are simulated agents) or none'),
  SCALAR_AUTOSCALE: z
    .enum(['0', '1'])
    .default('0')
    .transform((v) => v === '1')
    .describe('1: the autoscaler buys and releases blocks. `scalar dev` turns it on unless set'),
  SCALAR_FAST_MIN_GPUS: z.coerce.number().int().min(0).default(8).describe('The autoscaler keeps at least this many warm FAST GPUs'),
  SCALAR_FAST_SAFETY_FACTOR: z.coerce
    .number()
    .min(1)
    .default(1.25)
    .describe('Warm FAST GPUs kept ≥ this factor × the EWMA of FAST demand (used + queued GPUs); a burst is bought for at once (this factor × demand now)'),
  SCALAR_FAST_EWMA_HALF_LIFE_SEC: positiveNumber.default(600).describe('Half-life of the EWMA of FAST demand'),
  SCALAR_AUTOSCALE_INTERVAL_SEC: positiveNumber.default(10).describe('How often the autoscaler decides'),
  SCALAR_AUTOSCALE_BUY_COOLDOWN_SEC: z.coerce.number().min(0).default(60).describe('Least time between two buys of one tier'),
  SCALAR_AUTOSCALE_RELEASE_COOLDOWN_SEC: z.coerce
    .number()
    .min(0)
    .default(600)
    .describe('Least time between a buy or release and the next release of one tier'),
  SCALAR_FLEX_MAX_PRICE: positiveNumber
    .default(1.2)
    .describe('The autoscaler buys FLEX capacity while the quoted price per GPU-hour is at most this'),
  SCALAR_FLEX_MAX_WAIT_SEC: positiveNumber
    .default(4 * 3600)
    .describe('Once the oldest FLEX job has waited this long, the autoscaler buys at market price'),
  SCALAR_BLOCK_HOURS: positiveNumber.default(24).describe('Shortest block the autoscaler buys (hours); longer when a waiting job of the tier needs longer'),
  SCALAR_SIM_PROVISION_DELAY_SEC: z.coerce
    .number()
    .min(0)
    .default(20)
    .describe('Simulated marketplace: seconds from buying a block to its nodes registering'),
  SCALAR_SIM_PRICE_SEED: z.coerce.number().int().default(42).describe('Simulated marketplace: seed of the price curve'),
});

export type Config = Readonly<z.infer<typeof configSchema>>;

export class ConfigError extends Error {
  constructor(
    message: string,
    readonly variables: string[],
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Parses an environment into a frozen Config, or throws a ConfigError naming each bad variable. */
export function parseConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty string means "unset": `FOO= scalar api` must not turn into a bad value.
  const cleaned = Object.fromEntries(
    Object.keys(configSchema.shape).flatMap((k) => (env[k] === undefined || env[k] === '' ? [] : [[k, env[k]]])),
  );
  const parsed = configSchema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${String(i.path[0])}: ${i.message}`);
    const names = parsed.error.issues.map((i) => String(i.path[0]));
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`, names);
  }
  // The actors' events carry job ids, users and reasons: a bridge anyone on the network can reach must ask for a token.
  if (!isLoopback(parsed.data.SCALAR_INSPECT_HOST) && parsed.data.SCALAR_INSPECT_TOKEN === undefined) {
    throw new ConfigError(
      `invalid configuration:\n  SCALAR_INSPECT_TOKEN: required when SCALAR_INSPECT_HOST (${parsed.data.SCALAR_INSPECT_HOST}) is not a loopback address`,
      ['SCALAR_INSPECT_TOKEN'],
    );
  }
  // Fewer than 3 intervals would lose a node for one late heartbeat.
  if (parsed.data.SCALAR_NODE_LOST_SEC * 1000 < 3 * parsed.data.SCALAR_HEARTBEAT_INTERVAL_MS) {
    throw new ConfigError(
      `invalid configuration:\n  SCALAR_NODE_LOST_SEC: must be at least 3 heartbeat intervals (${(3 * parsed.data.SCALAR_HEARTBEAT_INTERVAL_MS) / 1000} s with SCALAR_HEARTBEAT_INTERVAL_MS=${parsed.data.SCALAR_HEARTBEAT_INTERVAL_MS})`,
      ['SCALAR_NODE_LOST_SEC'],
    );
  }
  // FLEX is the cheaper tier by definition: a price list that says otherwise is a typo.
  if (parsed.data.SCALAR_PRICE_FLEX_GPU_HOUR >= parsed.data.SCALAR_PRICE_FAST_GPU_HOUR) {
    throw new ConfigError(
      `invalid configuration:\n  SCALAR_PRICE_FLEX_GPU_HOUR: must be below SCALAR_PRICE_FAST_GPU_HOUR (${parsed.data.SCALAR_PRICE_FLEX_GPU_HOUR} ≥ ${parsed.data.SCALAR_PRICE_FAST_GPU_HOUR})`,
      ['SCALAR_PRICE_FLEX_GPU_HOUR'],
    );
  }
  if (parsed.data.DATABASE_PASSWORD_FILE !== undefined) parsed.data.DATABASE_URL = withPasswordFrom(parsed.data.DATABASE_URL, parsed.data.DATABASE_PASSWORD_FILE);
  return Object.freeze(parsed.data);
}

/** DATABASE_URL with the password read from DATABASE_PASSWORD_FILE (trailing newline dropped). */
function withPasswordFrom(url: string | undefined, file: string): string {
  const bad = (why: string): never => {
    throw new ConfigError(`invalid configuration:\n  DATABASE_PASSWORD_FILE: ${why}`, ['DATABASE_PASSWORD_FILE']);
  };
  if (url === undefined) return bad('needs DATABASE_URL (the embedded PostgreSQL makes its own password)');
  let password = '';
  try {
    password = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    return bad(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (password === '') return bad(`${file} is empty`);
  const u = new URL(url);
  u.password = encodeURIComponent(password);
  return u.toString();
}

/** 127.0.0.0/8, ::1 and localhost: only this host can reach them. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

let loaded: Config | undefined;

/** The process-wide config, parsed once on first use. */
export function config(): Config {
  loaded ??= parseConfig();
  return loaded;
}

/** Rows for the README table: name, default, description. */
export function configDocs(): { name: string; default: string; description: string }[] {
  return Object.entries(configSchema.shape).map(([name, schema]) => {
    const s = schema as z.ZodType;
    let def = '';
    try {
      const v = s.parse(undefined);
      def = v === undefined ? '(unset)' : typeof v === 'boolean' ? (v ? '1' : '0') : String(v);
    } catch {
      def = '(required)';
    }
    return { name, default: def, description: s.description ?? '' };
  });
}
