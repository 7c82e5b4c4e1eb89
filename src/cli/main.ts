/**
 * The `scalar` command line: every command, its options and its help, in one
 * place. Each command's code is imported only when that command runs, so
 * `scalar agent` loads the agent and NATS but never Fastify, MikroORM or the
 * simulator's charts, and `scalar coordinator` never loads Fastify (the idle
 * memory of each process is in docs/performance.md). Only commander and two
 * small, pure simulator modules (for the defaults shown in `--help`) load for
 * every command.
 */
import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_FLEET } from '../sim/fleet-spec.ts';
import { DEFAULT_TIER_RULE, DEFAULT_USERS } from '../sim/workload.ts';
import type { AgentCliOptions } from './agent.ts';
import type { SimulateOptions } from './simulate.ts';

const program = new Command()
  .name('scalar')
  .description('Scalar: a GPU job scheduler with FAST and FLEX tiers')
  .showHelpAfterError();

program
  .command('api')
  .description('run the REST API (stateless; run as many as you like)')
  .action(async () => (await import('./api.ts')).runApi());

program
  .command('coordinator')
  .description('run the coordinator: placement and the job and node actors (one leader; others stand by)')
  .action(async () => (await import('./coordinator.ts')).runCoordinator());

program
  .command('dev')
  .description('run everything on embedded defaults (what `npm start` runs): API, coordinator, NATS and three simulated nodes')
  .option('--speed <factor>', 'simulated jobs run expected_duration_sec / factor seconds', '1')
  .action(async (opts: { speed: string }) => {
    const speed = Number(opts.speed);
    if (!(speed > 0)) {
      process.stderr.write('scalar dev: --speed must be a positive number\n');
      process.exit(2);
    }
    return (await import('./dev.ts')).runDev({ speed });
  });

program
  .command('simulate')
  .description('replay a job trace through the real coordinator in virtual time, and report waits, utilisation, fragmentation, preemptions and cost')
  .requiredOption('--trace <file>', 'trace CSV: job_id,submit_time_sec,gpu_count,duration_sec,vram_per_gpu_gb,cpu_cores,ram_gb,user,status')
  .option('--fleet <spec>', 'starting fleet, POOL=NODESxGPUSxVRAM[xCPUxRAM],…', DEFAULT_FLEET)
  .option('--policy <name>', 'scheduling policy: scalar or fifo-first-fit', 'scalar')
  .option('--compare <a,b>', 'run several policies on the same trace and seed, and print them side by side with ratios')
  .option('--autoscale <on|off>', 'let the autoscaler buy and release capacity blocks from the simulated marketplace', 'off')
  .option('--tiers <rule>', 'how jobs get a tier: random:P, max-gpus:N, all-fast or all-flex', DEFAULT_TIER_RULE)
  .option('--users <n>', 'users to spread jobs without a user over (for fair share)', String(DEFAULT_USERS))
  .option('--seed <n>', 'seed of the tier and user draws and of the marketplace prices', '1')
  .option('--out <dir>', 'where metrics.json and the charts go', 'simulation')
  .option('--no-png', 'write SVG charts only')
  .action(async (opts: SimulateOptions) => (await import('./simulate.ts')).runSimulate(opts));

program
  .command('migrate')
  .description('apply pending database migrations')
  .option('--create <name>', 'developers: write a new migration from the entity changes')
  .action(async (opts: { create?: string }) => (await import('./migrate.ts')).runMigrate(opts));

const keys = program.command('keys').description('manage API keys');
keys
  .command('create')
  .description('create an API key and print it (shown once)')
  .requiredOption('--name <name>', 'a label for the key (and the user name, for a new user)')
  .option('--admin', 'create a new admin user for the key')
  .option(
    '--user <id>',
    'add the key to this existing user instead of creating one',
    (v: string) => {
      if (!/^[0-9a-f-]{36}$/i.test(v)) throw new InvalidArgumentError('must be a user id (UUID)');
      return v;
    },
  )
  .action(async (opts: { name: string; admin?: boolean; user?: string }) => (await import('./keys.ts')).runKeysCreate(opts));

const signingKey = program.command('signing-key').description("the coordinator's key that signs the commands agents run (docs/security.md)");
signingKey
  .command('create <file>')
  .description('write a new signing key (mode 0600; never over an existing file) and print its public key, for SCALAR_COORDINATOR_KEYS')
  .action(async (file: string) => (await import('./signing-key.ts')).runSigningKeyCreate(file));
signingKey
  .command('show <file>')
  .description('print the public key of a signing key file, for SCALAR_COORDINATOR_KEYS')
  .action(async (file: string) => (await import('./signing-key.ts')).runSigningKeyShow(file));

program
  .command('nats-config')
  .description('write an authenticated NATS server config and one credential per role (api, coordinator, each node) into a directory')
  .option('--dir <dir>', 'where the config and credentials go', 'scalar-nats')
  .option('--node <id>', 'a node to mint an agent credential for (repeat it, or give a comma-separated list)', (v: string, acc: string[]) => [...acc, v], [] as string[])
  .option('--listen <host:port>', 'where the server listens (agents on other hosts must reach it)', '0.0.0.0:4222')
  .option('--store <dir>', "JetStream's store; default: <dir>/jetstream")
  .action(async (opts: { dir: string; node: string[]; listen: string; store?: string }) => (await import('./creds.ts')).runNatsConfig(opts));

const creds = program.command('creds').description("manage the NATS credentials in a `scalar nats-config` directory (reloads the local server when it runs from it)");
const credsTarget = (c: Command) =>
  c
    .option('--node <id>', "an agent's node id")
    .option('--role <role>', 'api or coordinator')
    .option('--dir <dir>', 'the `scalar nats-config` directory', 'scalar-nats');
credsTarget(creds.command('create').description("mint a credential (a new node's, or a replacement) and print its NATS_CREDS")).action(
  async (opts: { dir: string; node?: string; role?: string }) => (await import('./creds.ts')).runCredsCreate(opts),
);
credsTarget(creds.command('revoke').description('revoke a credential: it leaves the server config, its connections are closed')).action(
  async (opts: { dir: string; node?: string; role?: string }) => (await import('./creds.ts')).runCredsRevoke(opts),
);
creds
  .command('list')
  .description('list who holds a credential')
  .option('--dir <dir>', 'the `scalar nats-config` directory', 'scalar-nats')
  .action(async (opts: { dir: string }) => (await import('./creds.ts')).runCredsList(opts));

program
  .command('agent')
  .description('run the node agent: runs the jobs the coordinator places on this node (talks only NATS)')
  .option('--node-id <id>', 'this node\'s id (letters, digits, _ and -); default: the host name')
  .option('--pool <pool>', 'fast or flex', 'fast')
  .option('--gpus <spec>', 'GPUs as <count>x<vram_gb>[,...], e.g. 8x80 or 4x40,4x80; default: discovered with nvidia-smi')
  .option('--cpu <cores>', 'CPU cores offered to jobs; default: all of this host\'s')
  .option('--ram-gb <gb>', 'RAM offered to jobs in GB; default: this host\'s total memory')
  .option('--runtime <kind>', 'process, docker or simulated', 'process')
  .option('--speed <factor>', 'simulated runtime only: how many times faster than expected_duration_sec jobs run (default 1)')
  .option('--state-dir <dir>', 'where the agent keeps its state and job work directories; default: <SCALAR_DATA_DIR>/agent/<node-id>')
  .option('--block <id>', 'the capacity block this node belongs to (placement keeps jobs off a block that ends too soon)')
  .option('--addr <host>', 'where other members of a gang job reach this node (their SCALAR_MASTER_ADDR); default: the host name')
  .action(async (opts: AgentCliOptions) => (await import('./agent.ts')).runAgent(opts));

await program.parseAsync(process.argv);
