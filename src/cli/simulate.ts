/**
 * `scalar simulate`: the trace-replay simulator's command line. Bad input
 * (a missing trace, a malformed row, a bad fleet or tier rule) exits 2 with
 * one line naming what is wrong; the replay itself needs no database, NATS
 * or network.
 */
import { FleetSpecError } from '../sim/fleet-spec.ts';
import { SimulateUsageError, simulate } from '../sim/simulate.ts';
import { TraceError } from '../sim/trace.ts';
import { TierRuleError } from '../sim/workload.ts';
import { loadConfig } from './common.ts';

export interface SimulateOptions {
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

export async function runSimulate(opts: SimulateOptions): Promise<void> {
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
}
