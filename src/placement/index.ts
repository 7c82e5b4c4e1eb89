/** Placement v1: pure capacity bookkeeping and best-fit placement. */
export type { GpuSlot, JobRequest, NodeCapacity, Placement, PlacementDecision } from './types.ts';
export { CapacitySnapshot, EPSILON, type FreeGpu, type NodeState, type NodeView } from './snapshot.ts';
export { compareJobs, placeJob, placeQueue } from './place.ts';
