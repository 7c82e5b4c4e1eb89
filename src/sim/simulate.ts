/**
 * `scalar simulate`: read a trace, turn it into jobs, replay it under one
 * policy or several (compare mode), and write metrics.json and the charts.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/index.ts';
import { renderCharts } from './charts.ts';
import { POLICIES, replay } from './engine.ts';
import { describeFleet, parseFleet } from './fleet-spec.ts';
import { computeMetrics } from './metrics.ts';
import { progressBar } from './progress.ts';
import { formatCompare, formatRun } from './report.ts';
import { readTrace } from './trace.ts';
import type { SimMetrics } from './types.ts';
import { buildWorkload, describeTierRule, parseTierRule } from './workload.ts';
import { SIMULATED_CATALOGUE } from '../capacity/marketplace.ts';

export interface SimulateOptions {
  trace: string;
  fleet: string;
  policies: string[];
  autoscale: boolean;
  tiers: string;
  users: number;
  seed: number;
  out: string;
  png: boolean;
  /** Show a progress bar (callers pass whether stdout is a terminal). */
  progress: boolean;
  config: Config;
}

export class SimulateUsageError extends Error {}

export interface SimulateResult {
  runs: SimMetrics[];
  files: string[];
  text: string;
}

export async function simulate(o: SimulateOptions): Promise<SimulateResult> {
  for (const p of o.policies) {
    if (!POLICIES[p]) throw new SimulateUsageError(`--policy: unknown policy ${JSON.stringify(p)}; use one of ${Object.keys(POLICIES).join(', ')}`);
  }
  if (new Set(o.policies).size !== o.policies.length) throw new SimulateUsageError('--compare: a policy is named twice');
  const fleet = parseFleet(o.fleet);
  const tierRule = parseTierRule(o.tiers);
  const rows = await readTrace(o.trace);
  // Gangs are made of whole nodes of the widest node there is (or could be bought).
  const widths = fleet.filter((g) => g.nodes > 0).map((g) => g.gpusPerNode);
  if (o.autoscale) widths.push(...SIMULATED_CATALOGUE.map((t) => t.gpus));
  const nodeGpus = Math.max(...widths, 0);
  if (nodeGpus === 0) throw new SimulateUsageError('--fleet has no node and --autoscale is off: nothing could run');
  const jobs = buildWorkload(rows, { seed: o.seed, tierRule, nodeGpus, users: o.users });
  const meta = { trace: path.basename(o.trace), fleet: describeFleet(fleet), tierRule: describeTierRule(tierRule) };

  const runs: SimMetrics[] = [];
  const charted = [];
  for (const policy of o.policies) {
    const bar = progressBar({ total: jobs.length, enabled: o.progress, label: policy });
    try {
      const { record } = await replay({ jobs, fleet, policy, autoscale: o.autoscale, seed: o.seed, config: o.config, meta, onProgress: (done, t) => bar.update(done, t) });
      const metrics = computeMetrics(record);
      runs.push(metrics);
      charted.push({ label: policy + (o.autoscale ? '+autoscale' : ''), metrics, outcomes: record.outcomes });
    } finally {
      bar.stop();
    }
  }

  await mkdir(o.out, { recursive: true });
  const metricsFile = path.join(o.out, 'metrics.json');
  await writeFile(metricsFile, JSON.stringify({ version: 1, runs }, null, 2) + '\n');
  const charts = await renderCharts(charted, o.out, { png: o.png, title: `${meta.trace} · fleet ${meta.fleet} · tiers ${meta.tierRule} · seed ${o.seed}` });
  const text = runs.length === 1 ? formatRun(runs[0]!) : formatCompare(runs);
  return { runs, files: [metricsFile, ...charts], text };
}
