/** What the coordinator stores in jobs.placement is the API's typed PlacementDiagnosis, not just any object. */
import { describe, expect, it } from 'vitest';
import { placementJson } from '../../../actors/coordinator/queue.ts';
import { PlacementDiagnosis } from '../../../src/api/jobs/schemas.ts';
import { FILTERS, SCORERS } from '../../../src/placement/index.ts';
import { aJob, aNode, decide, holdOn, snapshotOf } from '../placement/builders.ts';

describe('placementJson', () => {
  it('a placed, a waiting and an unschedulable decision each parse as the typed wire schema, every filter and scorer counted', () => {
    const snap = snapshotOf(aNode('a').gpus(2, 80), aNode('b').gpus(1, 80));
    holdOn(snap, aJob('h').gpus(1, 80), 'b', [0]);
    const placed = decide(snap, aJob('p').gpus(2, 80));
    const never = decide(snap, aJob('n').gpus(3, 80));
    expect([placed.kind, never.kind]).toEqual(['placed', 'unschedulable']);
    const full = snapshotOf(aNode('a').gpus(1, 80));
    holdOn(full, aJob('h').gpus(1, 80), 'a', [0]);
    const waits = decide(full, aJob('w').gpus(1, 80));
    expect(waits.kind).toBe('waiting');

    for (const [d, extra] of [
      [placed, { at: 0 }],
      [never, { reason: 'unschedulable: …', at: 0 }],
      [waits, { position: 1, reason: waits.kind === 'waiting' ? waits.reason : '', at: 0 }],
    ] as const) {
      const stored = placementJson(d.diagnosis, extra);
      const parsed = PlacementDiagnosis.strict().safeParse(JSON.parse(JSON.stringify(stored)));
      expect(parsed.error).toBeUndefined();
      expect(Object.keys(stored.rejected)).toEqual([...FILTERS]);
      for (const b of stored.best) expect(Object.keys(b.scores)).toEqual([...SCORERS]);
    }
    expect(placementJson(placed.diagnosis, { at: 0 }).best.length).toBeGreaterThan(0);
  });
});
