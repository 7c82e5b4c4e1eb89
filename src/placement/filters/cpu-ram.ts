/** Free CPU or free RAM below the ask. It tells the two apart: a node short of CPU is a `cpu` rejection, one short of RAM only a `ram` one. */
import { EPSILON } from '../node-entry.ts';
import { plural } from '../words.ts';
import { defineFilter, SILENT } from './plugin.ts';

export const cpuRam = defineFilter({
  name: 'cpu_ram',
  codes: ['cpu', 'ram'],
  check: (node, need) => (need.cpu > node.cpuFree + EPSILON ? 'cpu' : need.ram > node.ramFree + EPSILON ? 'ram' : null),
  reasonRank: 50,
  describe(n, causes, ask) {
    // What is not counted as short of CPU is short of RAM, so a diagnosis without the split still adds up.
    const cpu = Math.min(causes.cpu ?? 0, n);
    const ram = n - cpu;
    const short = cpu > 0 ? `${cpu} ${plural(cpu, 'lacks', 'lack')} free CPU (needs ${ask.cpu} ${plural(ask.cpu, 'core', 'cores')})` : SILENT;
    const ramShort = ram > 0 ? `${ram} ${plural(ram, 'lacks', 'lack')} free RAM (needs ${ask.ram} GB)` : SILENT;
    return short !== null && ramShort !== null ? `${short}, ${ramShort}` : (short ?? ramShort);
  },
});
