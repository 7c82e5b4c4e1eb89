/**
 * `scalar simulate`: the trace-replay simulator's command line. Bad input
 * (a missing trace, a malformed row, a bad fleet or tier rule) exits 2 with
 * one line naming what is wrong; the replay itself needs no database, NATS
 * or network.
 */
import type { Command } from 'commander';
import { DEFAULT_FLEET, FleetSpecError } from '../sim/fleet-spec.ts';
import { SimulateUsageError, simulate } from '../sim/simulate.ts';
import { TraceError } from '../sim/trace.ts';
import { DEFAULT_TIER_RULE, DEFAULT_USERS, TierRuleError } from '../sim/workload.ts';
import { loadConfig } from './common.ts';

interface Opts {
  trace: string;
  fleet: string;
  policy: string;
  compare?: string;
  autoscale: string;
  tiers: string;
  users: string;
  seed: string;
  out: string;
  png: boolean;
}

function usage(msg: string): never {
  process.stderr.write(`scalar simulate: ${msg}\n`);
  process.exit(2);
}

function wholeNumber(name: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) usage(`${name} must be a whole number ≥ ${min} (got ${JSON.stringify(v)})`);
  return n;
}

export function registerSimulate(program: Command): void {
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
    .action(async (opts: Opts) => {
      if (opts.autoscale !== 'on' && opts.autoscale !== 'off') usage(`--autoscale must be on or off (got ${JSON.stringify(opts.autoscale)})`);
      const policies = (opts.compare ?? opts.policy).split(',').map((p) => p.trim()).filter((p) => p.length > 0);
      if (opts.compare !== undefined && policies.length < 2) usage('--compare needs at least two policies, e.g. --compare scalar,fifo-first-fit');
      const seed = wholeNumber('--seed', opts.seed, 0);
      const users = wholeNumber('--users', opts.users, 1);
      const config = loadConfig();
      try {
        const res = await simulate({
          trace: opts.trace,
          fleet: opts.fleet,
          policies,
          autoscale: opts.autoscale === 'on',
          tiers: opts.tiers,
          users,
          seed,
          out: opts.out,
          png: opts.png,
          progress: process.stdout.isTTY === true,
          config: { ...config, SCALAR_SIM_PRICE_SEED: process.env.SCALAR_SIM_PRICE_SEED ? config.SCALAR_SIM_PRICE_SEED : seed },
        });
        process.stdout.write(res.text + '\n\n');
        process.stdout.write(`wrote ${res.files.join(', ')}\n`);
      } catch (err) {
        if (err instanceof TraceError || err instanceof FleetSpecError || err instanceof TierRuleError || err instanceof SimulateUsageError) usage(err.message);
        throw err;
      }
    });
}
