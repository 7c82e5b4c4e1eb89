/**
 * The tier rule (unchanged from v1): FAST runs only on `fast` nodes. FLEX
 * runs on `flex` nodes, or on `fast` nodes that hold no FAST job (idle FAST
 * capacity, where FLEX holds are preemptible): a FLEX job on a fast node
 * busy with FAST work would be preempted at once. A FAST job may join a
 * fast node that already runs FLEX work if it fits.
 */
import { Pool } from '../../domain/cluster.ts';
import { plural } from '../words.ts';
import { defineFilter, SILENT } from './plugin.ts';

export const poolFilter = defineFilter({
  name: 'pool',
  codes: ['pool'],
  check: (node, need) => ((need.tier === 'FAST' ? node.pool !== Pool.fast : node.pool === Pool.fast && node.fastJobs > 0) ? 'pool' : null),
  // The index files fast nodes that hold a FAST job apart, and FLEX never searches them.
  ruledOut: (r) => r.unsearched,
  reasonRank: 20,
  describe: (n) => (n > 0 ? `${n} ${plural(n, 'is', 'are')} busy with FAST jobs` : SILENT),
});
