/**
 * A gang of N needs N distinct nodes that pass every per-node filter. Not a
 * per-node check: it looks at the set of nodes that passed everything else,
 * and when they are too few, those nodes are its rejections.
 */
import { defineFilter, SILENT } from './plugin.ts';

export const gang = defineFilter({
  name: 'gang',
  codes: ['gang'],
  rejectsSet: (feasible, need) => (feasible < need.nodeCount ? feasible : 0),
  reasonRank: 70,
  describe: (n, _causes, ask) => (ask.nodeCount > 1 ? `a gang of ${ask.nodeCount} needs ${ask.nodeCount} nodes, ${n} can hold a member now` : SILENT),
});
