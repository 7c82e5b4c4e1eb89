/**
 * The simulator's speed target: a full replay of itp-cluster04.csv (15,802
 * jobs over 59 days) within 60 s of wall clock, with each policy.
 *
 *   node --import tsx bench/simulate.ts
 *   BENCH_TRACE=path.csv BENCH_FLEET=fast=40x8x80,flex=30x8x40 BENCH_AUTOSCALE=on node --import tsx bench/simulate.ts
 *
 * Runs `replay()` (what `scalar simulate` runs) once per policy and prints,
 * per policy, the wall time, the virtual makespan, the replay speed-up
 * (virtual seconds per wall second) and the process's peak RSS, as a table
 * line and a JSON line.
 */
import { resolve } from 'node:path';
import { parseConfig } from '../src/config/index.ts';
import { POLICIES, replay } from '../src/sim/engine.ts';
import { parseFleet } from '../src/sim/fleet-spec.ts';
import { readTrace } from '../src/sim/trace.ts';
import { buildWorkload, DEFAULT_TIER_RULE, parseTierRule } from '../src/sim/workload.ts';

const trace = process.env.BENCH_TRACE ?? resolve(import.meta.dirname, '../../shared/traces/itp-cluster04.csv');
const fleetSpec = process.env.BENCH_FLEET ?? 'fast=40x8x80,flex=30x8x40';
const autoscale = process.env.BENCH_AUTOSCALE === 'on';
const fleet = parseFleet(fleetSpec);
const jobs = buildWorkload(await readTrace(trace), { seed: 1, tierRule: parseTierRule(DEFAULT_TIER_RULE), nodeGpus: 8 });
const config = parseConfig({});

console.log(`replaying ${jobs.length} jobs of ${trace} on ${fleetSpec}, autoscale ${autoscale ? 'on' : 'off'}`);
for (const policy of Object.keys(POLICIES)) {
  const { record } = await replay({ jobs, fleet, policy, autoscale, seed: 1, config, meta: { trace, fleet: fleetSpec, tierRule: DEFAULT_TIER_RULE } });
  const rssMb = process.resourceUsage().maxRSS / 1024;
  const line = { bench: 'simulate', policy, jobs: jobs.length, wall_s: +record.wallSec.toFixed(1), makespan_days: +(record.makespanSec / 86_400).toFixed(1), speedup: Math.round(record.makespanSec / record.wallSec), peak_rss_mb: Math.round(rssMb) };
  console.log(`${policy.padEnd(16)} wall ${line.wall_s.toFixed(1).padStart(5)} s  makespan ${line.makespan_days} d  ${line.speedup.toLocaleString('en-US')}× real time  peak RSS ${line.peak_rss_mb} MB`);
  console.log(JSON.stringify(line));
}
