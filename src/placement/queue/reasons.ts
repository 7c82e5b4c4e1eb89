/** Plain-words reasons for the queue's decisions (status_reason of a waiting job). */
import type { JobRequest, PlacementDiagnosis } from '../types.ts';

const plural = (n: number, one: string, many: string): string => (n === 1 ? one : many);

/** "14:05 UTC" when on now's UTC day, else "2025-03-02 14:05 UTC"; rounded up so "by" stays true. */
export function clockTime(at: number, now: number): string {
  const minute = 60_000;
  const iso = new Date(Math.ceil(at / minute) * minute).toISOString();
  const sameDay = iso.slice(0, 10) === new Date(now).toISOString().slice(0, 10);
  return `${sameDay ? '' : `${iso.slice(0, 10)} `}${iso.slice(11, 16)} UTC`;
}

export const reservedClause = (startAt: number, now: number): string =>
  `expected to start by ${clockTime(startAt, now)} (reserved)`;

/** "within 30 s", "within 2 min". */
function within(sec: number): string {
  return sec < 120 ? `within ${Math.ceil(sec)} s` : `within ${Math.ceil(sec / 60)} min`;
}

export function preemptingReason(victims: number, reused: number, nodeIds: readonly string[], graceSec: number): string {
  const on = `on ${nodeIds.join(', ')} (GPUs free ${within(graceSec)})`;
  if (victims === 0) return `waiting for ${reused} preempted FLEX ${plural(reused, 'job', 'jobs')} to stop ${on}`;
  return `preempting ${victims} FLEX ${plural(victims, 'job', 'jobs')} ${on}`;
}

/**
 * A reason rebuilt from a diagnosis, for a job that skipped the node scan
 * because a smaller request already failed (cache.ts), in the pipeline's
 * style ("0 of 12 ready fast nodes can hold it: 3 have …"). The counts are
 * those of that earlier scan, phrased with this job's numbers: every node
 * that failed the smaller request fails this one too, though maybe by an
 * earlier filter. CPU and RAM shortages are not told apart (the diagnosis
 * counts them together).
 */
export function reasonFromDiagnosis(job: JobRequest, d: PlacementDiagnosis): string {
  const pools = job.tier === 'FAST' ? 'fast' : 'flex or fast';
  const r = d.rejected;
  const ready = d.nodes - r.node_ready;
  if (d.nodes === 0) return `no ready ${pools} node`;
  if (ready <= 0) return `no ready ${pools} node (${r.node_ready} ${plural(r.node_ready, 'is', 'are')} registering, draining or lost)`;
  const causes: string[] = [];
  if (r.pool > 0) causes.push(`${r.pool} ${plural(r.pool, 'is', 'are')} busy with FAST jobs`);
  if (r.reservation > 0) causes.push(`${r.reservation} ${plural(r.reservation, 'is', 'are')} reserved for a higher job`);
  if (r.cpu_ram > 0) causes.push(`${r.cpu_ram} ${plural(r.cpu_ram, 'lacks', 'lack')} free CPU or RAM (needs ${job.cpuCores} CPU ${plural(job.cpuCores, 'core', 'cores')}, ${job.ramGb} GB RAM)`);
  if (r.gpus > 0) {
    const has = plural(r.gpus, 'has', 'have');
    const withVram = job.gpuCount > 0 && job.vramPerGpuGb > 0 ? ` with ≥ ${job.vramPerGpuGb} GB` : '';
    causes.push(job.gpuCount === 1 ? `${r.gpus} ${has} no free GPU${withVram}` : `${r.gpus} ${has} fewer than ${job.gpuCount} free GPUs${withVram}`);
  }
  if (r.block_time > 0) {
    causes.push(r.block_time === 1 ? '1 belongs to a block that ends too soon' : `${r.block_time} belong to blocks that end too soon`);
  }
  if (job.nodeCount > 1) causes.push(`a gang of ${job.nodeCount} needs ${job.nodeCount} nodes, ${r.gang} can hold a member now`);
  return `0 of ${ready} ready ${pools} ${plural(ready, 'node', 'nodes')} can hold it: ${causes.join(', ')}`;
}
