import { describe, expect, it } from 'vitest';
import type { PlacementDiagnosis } from '../../../src/placement/decision.ts';
import { describeWaiting } from '../../../src/placement/diagnosis.ts';
import { askOf } from '../../../src/placement/filters.ts';
import { clockTime, preemptingReason, reservedClause } from '../../../src/placement/queue/reasons.ts';
import type { JobRequest } from '../../../src/placement/types.ts';
import { T0, aJob, sec } from './builders.ts';

const diag = (nodes: number, rejected: Partial<PlacementDiagnosis['rejected']>, causes: Record<string, number> = {}): PlacementDiagnosis => ({
  nodes,
  rejected: { node_ready: 0, pool: 0, reservation: 0, cpu_ram: 0, gpus: 0, block_time: 0, gang: 0, ...rejected },
  causes,
  best: [],
  step: null,
});

/** The queue words a reused diagnosis with the one wording function, and the job's own numbers. */
const reasonFromDiagnosis = (job: JobRequest, d: PlacementDiagnosis): string => describeWaiting(askOf(job), d);

describe('reasons', () => {
  it.each([
    { at: sec(30 * 60), want: '12:30 UTC', why: 'same day' },
    { at: sec(30 * 60 + 1), want: '12:31 UTC', why: 'rounded up, so "by" holds' },
    { at: sec(13 * 3600), want: '2025-01-02 01:00 UTC', why: 'another day names the date' },
  ])('clockTime → $want ($why)', ({ at, want }) => {
    expect(clockTime(at, T0)).toBe(want);
  });

  it('reserved clause and preemption reasons', () => {
    expect(reservedClause(sec(300), T0)).toBe('expected to start by 12:05 UTC (reserved)');
    expect(preemptingReason(2, 0, ['fast-3'], 30)).toBe('preempting 2 FLEX jobs on fast-3 (GPUs free within 30 s)');
    expect(preemptingReason(1, 0, ['fast-1', 'fast-2'], 300)).toBe('preempting 1 FLEX job on fast-1, fast-2 (GPUs free within 5 min)');
    expect(preemptingReason(0, 1, ['fast-1'], 30)).toBe('waiting for 1 preempted FLEX job to stop on fast-1 (GPUs free within 30 s)');
  });

  it('a reason rebuilt from a diagnosis, with the job’s own numbers', () => {
    const job = aJob('j').gpus(4, 80).cpu(8).ram(64).build();
    expect(reasonFromDiagnosis(job, diag(5, { node_ready: 1, reservation: 1, gpus: 3 }))).toBe(
      '0 of 4 ready fast nodes can hold it: 1 is reserved for a higher job, 3 have fewer than 4 free GPUs with ≥ 80 GB',
    );
    // The diagnosis tells CPU from RAM (causes), so the reused one words them as the pipeline does.
    expect(reasonFromDiagnosis(aJob('g').flex().nodes(2).build(), diag(3, { cpu_ram: 2, gang: 1 }, { cpu: 1, ram: 1 }))).toBe(
      '0 of 3 ready flex or fast nodes can hold it: 1 lacks free CPU (needs 4 cores), 1 lacks free RAM (needs 16 GB), a gang of 2 needs 2 nodes, 1 can hold a member now',
    );
    expect(reasonFromDiagnosis(job, diag(2, { node_ready: 2 }))).toBe('no ready fast node (2 are registering, draining or lost)');
  });
});
