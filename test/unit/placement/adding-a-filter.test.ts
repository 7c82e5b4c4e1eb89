/**
 * The worked example of docs/architecture.md, "Adding a placement filter":
 * a filter on data the node view already has is its plugin, its test and
 * its entry in the registry. Here the registry is the real one with the
 * example inserted, exactly as the one line in src/placement/filters.ts
 * would do, and nothing else in the pipeline or the wording changes: the
 * diagnosis counts the new filter and status_reason words it.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { describeWaiting } from '../../../src/placement/diagnosis.ts';
import { FILTER_PLUGINS, askOf, compileFilters, defineFilter, firstReject, needOf } from '../../../src/placement/filters.ts';
import { SILENT } from '../../../src/placement/filters/plugin.ts';
import { placeJob } from '../../../src/placement/pipeline.ts';
import { plural } from '../../../src/placement/words.ts';
import { aJob, aNode, ctxOf, holdOn, snapshotOf } from './builders.ts';

// docs:begin
export const MAX_JOBS = 4;

export const maxJobs = defineFilter({
  name: 'max_jobs',
  codes: ['max_jobs'],
  check: (node) => (node.holds.length >= MAX_JOBS ? 'max_jobs' : null),
  reasonRank: 45,
  describe: (n) => (n === 0 ? SILENT : `${n} already ${plural(n, 'runs', 'run')} ${MAX_JOBS} jobs`),
});
// docs:end

/** src/placement/filters.ts with the one line changed: maxJobs after gpusFilter. */
const REGISTRY = compileFilters([...FILTER_PLUGINS.slice(0, 5), maxJobs, ...FILTER_PLUGINS.slice(5)]);

describe('max_jobs (the example filter)', () => {
  it.each([
    { held: 3, rejects: false },
    { held: 4, rejects: true },
  ])('a node running $held jobs: rejected $rejects', ({ held, rejects }) => {
    const snap = snapshotOf(aNode('a'));
    for (let i = 0; i < held; i++) holdOn(snap, aJob(`h${i}`).gpus(0).cpu(1).ram(1), 'a', []);
    const ctx = ctxOf();
    expect(maxJobs.check!(snap.state('a')!, needOf(aJob('j').build(), ctx), ctx) !== null).toBe(rejects);
  });
});

describe('a filter added to the registry needs nothing else', () => {
  // a: 4 small CPU-only jobs, every GPU free (max_jobs); b: every GPU held (gpus); c: not ready.
  const fleet = () => {
    const snap = snapshotOf(aNode('a'), aNode('b').gpus(1, 80), aNode('c').notReady());
    for (let i = 0; i < MAX_JOBS; i++) holdOn(snap, aJob(`h${i}`).gpus(0).cpu(1).ram(1), 'a', []);
    holdOn(snap, aJob('full').gpus(1, 80), 'b', [0]);
    return snap;
  };

  it('without it, the job goes to a', () => {
    const d = placeJob(fleet(), aJob('j').build(), ctxOf());
    expect(d.kind === 'placed' && d.placement.nodes[0]!.node_id).toBe('a');
  });

  it('with it, the pipeline counts its rejection and status_reason words it, in reasonRank order', () => {
    const job = aJob('j').build();
    const d = placeJob(fleet(), job, ctxOf(), REGISTRY);
    const rejected: Record<string, number> = d.diagnosis.rejected;
    expect(rejected).toMatchObject({ node_ready: 1, gpus: 1, max_jobs: 1 });
    expect(Object.values(rejected).reduce((a, b) => a + b, 0)).toBe(d.diagnosis.nodes);
    const reason = '0 of 2 ready fast nodes can hold it: 1 has no free GPU with ≥ 40 GB, 1 already runs 4 jobs';
    expect(d).toMatchObject({ kind: 'waiting', reason });
    // The one wording function words it from the diagnosis alone, as the queue does for a reused scan.
    expect(describeWaiting(askOf(job), d.diagnosis, REGISTRY)).toBe(reason);
    // firstReject, which the property tests use as the brute-force definition, runs it too.
    const ctx = ctxOf();
    expect(firstReject(fleet().state('a')!, needOf(job, ctx), ctx, REGISTRY)?.name).toBe('max_jobs');
  });

  it('docs/architecture.md shows this very plugin', () => {
    const own = readFileSync(new URL(import.meta.url), 'utf8');
    const plugin = own.slice(own.indexOf('// docs:begin\n') + '// docs:begin\n'.length, own.indexOf('// docs:end'));
    const doc = readFileSync(new URL('../../../docs/architecture.md', import.meta.url), 'utf8');
    expect(plugin.length).toBeGreaterThan(100);
    expect(doc).toContain(plugin);
  });
});
