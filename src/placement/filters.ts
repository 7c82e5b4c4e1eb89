/**
 * The filter registry (kube-scheduler's Filter plugins, Nomad's feasibility
 * checks). Each filter is a plugin in its own file under filters/ (the
 * contract is filters/plugin.ts): it rejects a node with a code of its own,
 * words its rejections, and claims what the free-GPU index already decided
 * for it. The pipeline runs them in this order, cheapest first, and counts a
 * rejected node once, under the first filter that rejected it.
 *
 * Why this order: a flag (node_ready), then the tier rule (pool), a map lookup
 * (reservation), two number compares (cpu_ram), a short walk of the free GPUs
 * (gpus), then the time rule (block_time, which also needs the job's
 * duration). `gang` is not a per-node check: it looks at the set of nodes that
 * passed everything else.
 *
 * To add a filter: its file under filters/, its test, and one line here
 * (docs/architecture.md, "Adding a placement filter").
 */
import { blockTime } from './filters/block-time.ts';
import { cpuRam } from './filters/cpu-ram.ts';
import { gang } from './filters/gang.ts';
import { gpusFilter } from './filters/gpus.ts';
import { nodeReady } from './filters/node-ready.ts';
import type { FilterPlugin, Need } from './filters/plugin.ts';
import { poolFilter } from './filters/pool.ts';
import { reservationFilter } from './filters/reservation.ts';
import type { NodeView, PlacementContext } from './types.ts';

export const FILTER_PLUGINS = [nodeReady, poolFilter, reservationFilter, cpuRam, gpusFilter, blockTime, gang] as const;

/** The names of the filters, in registry order; each is a key of `rejected` in every diagnosis. */
export type FilterName = (typeof FILTER_PLUGINS)[number]['name'];
export const FILTERS: readonly FilterName[] = Object.freeze(FILTER_PLUGINS.map((f) => f.name));

type With<K extends keyof FilterPlugin> = FilterPlugin & Required<Pick<FilterPlugin, K>>;
const has =
  <K extends keyof FilterPlugin>(k: K) =>
  (f: FilterPlugin): f is With<K> =>
    f[k] !== undefined;

/** A registry as the pipeline and the wording use it, split once per registry. */
export interface CompiledFilters {
  /** The plugins with a per-node check, in registry order. */
  readonly checks: readonly With<'check'>[];
  readonly ruledOut: readonly With<'ruledOut'>[];
  readonly sets: readonly With<'rejectsSet'>[];
  /** Per check, whether the filter tells causes apart (more than one code), so its codes are counted in `causes`. */
  readonly checkTellsCauses: readonly boolean[];
  /** In reasonRank order, for status_reason. */
  readonly told: readonly FilterPlugin[];
  /** Every name, and every such code, at 0: what a diagnosis starts from (copied, never changed). */
  readonly zeroRejected: Readonly<Record<FilterName, number>>;
  readonly zeroCauses: Readonly<Record<string, number>>;
}

// Readonly by type, not frozen: every decision copies these (emptyDiagnosis),
// and V8 spreads a frozen object about 5× slower than a plain one.
const zeros = (keys: readonly string[]): Record<string, number> => Object.fromEntries(keys.map((k) => [k, 0]));

const compiled = new WeakMap<readonly FilterPlugin[], CompiledFilters>();

/** The registry split by hook; cached, so pass the same array each time. */
export function compileFilters(filters: readonly FilterPlugin[]): CompiledFilters {
  let c = compiled.get(filters);
  if (!c) {
    const names = new Set<string>();
    for (const f of filters) {
      if (names.has(f.name)) throw new Error(`filter ${f.name} is registered twice`);
      names.add(f.name);
      if (f.codes.length === 0) throw new Error(`filter ${f.name} has no codes`);
    }
    const checks = filters.filter(has('check'));
    const telling = filters.filter((f) => f.codes.length > 1);
    c = {
      checks,
      checkTellsCauses: checks.map((f) => f.codes.length > 1),
      ruledOut: filters.filter(has('ruledOut')),
      sets: filters.filter(has('rejectsSet')),
      told: [...filters].sort((a, b) => a.reasonRank - b.reasonRank),
      // With a registry of other names (a test's), the keys are that registry's.
      zeroRejected: zeros(filters.map((f) => f.name)) as Record<FilterName, number>,
      zeroCauses: zeros([...new Set(telling.flatMap((f) => f.codes))]),
    };
    compiled.set(filters, c);
  }
  return c;
}

export const DEFAULT_FILTERS: CompiledFilters = compileFilters(FILTER_PLUGINS);

/** The per-node filters, in registry order (`gang` is the set-level check). */
export const NODE_FILTERS: readonly FilterPlugin[] = DEFAULT_FILTERS.checks;

/** The first filter that rejects the node, or null when one member fits there now. */
export function firstReject(node: NodeView, need: Need, ctx: PlacementContext, filters: CompiledFilters = DEFAULT_FILTERS): FilterPlugin | null {
  for (const f of filters.checks) if (f.check(node, need, ctx) !== null) return f;
  return null;
}

export { blockTime, cpuRam, gang, gpusFilter, nodeReady, poolFilter, reservationFilter };
export { askOf, defineFilter, firstSufficient, needOf, type Ask, type FilterPlugin, type Need, type RuledOut } from './filters/plugin.ts';
