/**
 * EASY backfill: a node promised to another (higher) job admits this one only
 * if the reservation is not strict and the job, by its expected duration,
 * ends by the reserved start. The reserved job itself passes.
 */
import type { Reservation } from '../types.ts';
import { plural } from '../words.ts';
import { defineFilter, SILENT, type Need } from './plugin.ts';

const excludes = (r: Reservation | undefined, need: Need): boolean =>
  r !== undefined && r.jobId !== need.jobId && (r.strict || need.endsBy > r.startAt);

export const reservationFilter = defineFilter({
  name: 'reservation',
  codes: ['reservation'],
  check: (node, need, ctx) => (excludes(ctx.reservations?.get(node.nodeId), need) ? 'reservation' : null),
  // Reservations are few, so the nodes the search never visited are looked up rather than found by a scan.
  ruledOut(r, need, ctx) {
    let n = 0;
    for (const [nodeId, res] of ctx.reservations ?? []) if (excludes(res, need) && r.claim(nodeId)) n++;
    return n;
  },
  reasonRank: 30,
  describe: (n) => (n > 0 ? `${n} ${plural(n, 'is', 'are')} reserved for a higher job` : SILENT),
});
