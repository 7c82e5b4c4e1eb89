/** Placement: pure capacity bookkeeping and the filter → score → bind pipeline (see types.ts). */
export * from './types.ts';
export { CapacitySnapshot, EPSILON, type NodeCopy, type ShapeCount } from './snapshot.ts';
export { compareJobs, expectedHoldTimes, placeJob, searchLimit, visitLimit } from './pipeline.ts';
export { NODE_FILTERS, type FilterPlugin, type Need } from './filters.ts';
export { DEFAULT_WEIGHTS, SCORER_PLUGINS, type ScorerPlugin } from './scorers.ts';
export { POOLS_OF } from './shapes.ts';
export * from './queue/index.ts';
