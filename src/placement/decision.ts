/**
 * What placement answers: a decision with its diagnosis (STYLE.md: every
 * decision can be explained), the queue's outcome, and the diagnosis as it
 * is stored in jobs.placement and served on GET /jobs/{id}.
 *
 * Apart from types.ts because the diagnosis is keyed by the filter registry
 * (filters.ts), whose plugins read the types in types.ts.
 */
import type { FilterName } from './filters.ts';
import type { Placement, PlacementStep, Preemption, Reservation, ScorerName } from './types.ts';

/**
 * Why a job was placed where it was, or why it waits. Serialised (snake_case,
 * PlacementRecord) into the job's `placement` object on GET /jobs/{id}.
 */
export interface PlacementDiagnosis {
  /** Nodes in the pools the job's tier may use. */
  nodes: number;
  /** Nodes rejected by each filter (each node counted once, by the first filter that rejected it). */
  rejected: Record<FilterName, number>;
  /**
   * The rejections of the filters that tell causes apart, by the code each
   * gave (FilterPlugin.codes: cpu_ram's `cpu` and `ram`), for the words of
   * status_reason. Not stored.
   */
  causes: Record<string, number>;
  /** The best candidates, best first (at most 3), with the weighted total and each scorer's 0–100 score. */
  best: { nodeId: string; score: number; scores: Record<ScorerName, number> }[];
  /** Which step placed it; null while it waits. */
  step: PlacementStep | null;
}

export type PlacementDecision =
  | { kind: 'placed'; placement: Placement; diagnosis: PlacementDiagnosis }
  /** Fits nowhere now. `reason` is plain words for status_reason, e.g. '0 of 2 ready fast nodes can hold it: 2 have fewer than 2 free GPUs with ≥ 80 GB'. */
  | { kind: 'waiting'; reason: string; diagnosis: PlacementDiagnosis }
  /** No node shape that exists or can be bought could ever hold it: the job fails fast. */
  | { kind: 'unschedulable'; reason: string; diagnosis: PlacementDiagnosis };

export interface WaitingJob {
  reason: string;
  diagnosis: PlacementDiagnosis;
  /** 1-based position among the waiting jobs, in the order this pass considered them. */
  position: number;
}

export interface QueueOutcome {
  /** In the order they were placed; each is already held in the snapshot. */
  placed: { placement: Placement; diagnosis: PlacementDiagnosis }[];
  waiting: Map<string, WaitingJob>;
  unschedulable: Map<string, { reason: string; diagnosis: PlacementDiagnosis }>;
  preemptions: Preemption[];
  reservations: Reservation[];
}

/**
 * A diagnosis as the coordinator stores it in jobs.placement and the API
 * serves it (snake_case; src/api/jobs/schemas.ts PlacementDiagnosis is its
 * wire schema). Every row the coordinator wrote has this shape.
 */
// A type, not an interface: the wire schema's loose object has an index signature, which only a type literal satisfies.
export type PlacementRecord = {
  /** 1-based position among the waiting jobs; null when placed or failed. */
  position: number | null;
  step: PlacementStep | null;
  nodes: number;
  rejected: Record<FilterName, number>;
  best: { node_id: string; score: number; scores: Record<ScorerName, number> }[];
  /** The status_reason it explains; null when placed. */
  reason: string | null;
  /** ISO 8601. */
  at: string;
};
