/** Placement: pure capacity bookkeeping and the filter → score → bind pipeline (see types.ts). */
export * from './types.ts';
export * from './decision.ts';
export { CapacitySnapshot, EPSILON, type NodeCopy, type ShapeCount } from './snapshot.ts';
export { compareJobs, expectedHoldTimes, placeJob, searchLimit, visitLimit } from './pipeline.ts';
export {
  askOf,
  compileFilters,
  defineFilter,
  FILTER_PLUGINS,
  FILTERS,
  NODE_FILTERS,
  type Ask,
  type CompiledFilters,
  type FilterName,
  type FilterPlugin,
  type Need,
  type RuledOut,
} from './filters.ts';
export { describeWaiting, emptyDiagnosis } from './diagnosis.ts';
export { DEFAULT_WEIGHTS, roundScores, SCORER_PLUGINS, type ScorerPlugin } from './scorers.ts';
export { POOLS_OF } from './shapes.ts';
export * from './queue/index.ts';
