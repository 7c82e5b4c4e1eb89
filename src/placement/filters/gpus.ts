/** Fewer than gpuCount free GPUs with VRAM ≥ the ask. */
import { plural } from '../words.ts';
import { defineFilter, firstSufficient, SILENT } from './plugin.ts';

export const gpusFilter = defineFilter({
  name: 'gpus',
  codes: ['gpus'],
  check: (node, need) => (need.gpus > 0 && node.freeGpus.length - firstSufficient(node, need.vram) < need.gpus ? 'gpus' : null),
  // The index shows every node the search did not visit short of free GPUs: those no earlier filter claimed are this one's.
  ruledOut: (r) => r.unclaimed,
  reasonRank: 40,
  describe(n, _causes, ask) {
    if (n === 0) return SILENT;
    const has = plural(n, 'has', 'have');
    const withVram = ask.vram > 0 ? ` with ≥ ${ask.vram} GB` : '';
    return ask.gpus === 1 ? `${n} ${has} no free GPU${withVram}` : `${n} ${has} fewer than ${ask.gpus} free GPUs${withVram}`;
  },
});
