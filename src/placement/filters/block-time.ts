/** The node's capacity block ends before the job (plus margin) would: it would be killed mid-run. */
import { defineFilter, SILENT } from './plugin.ts';

export const blockTime = defineFilter({
  name: 'block_time',
  codes: ['block_time'],
  check: (node, need) => (node.endsAt !== null && node.endsAt < need.mustOutlive ? 'block_time' : null),
  reasonRank: 60,
  describe: (n) => (n === 0 ? SILENT : n === 1 ? '1 belongs to a block that ends too soon' : `${n} belong to blocks that end too soon`),
});
