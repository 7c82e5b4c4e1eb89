/** Only `ready` nodes take new jobs (not registering, draining or lost). */
import { defineFilter, SILENT } from './plugin.ts';

export const nodeReady = defineFilter({
  name: 'node_ready',
  codes: ['node_ready'],
  check: (node) => (node.schedulable ? null : 'node_ready'),
  // The index files no node that is not ready.
  ruledOut: (r) => r.notReady,
  reasonRank: 10,
  // Not a cause: it decides which nodes the "0 of N ready … nodes" count is of (diagnosis.ts).
  describe: () => SILENT,
});
