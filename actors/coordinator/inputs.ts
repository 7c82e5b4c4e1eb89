/**
 * The coordinator's input vocabulary: what its feeds push into a pass, and
 * the effects a pass defers until after its commit. Kept apart from
 * coordinator.ts so the parts it drives (fleet, members, blocks, the
 * simulator's agents) name these without importing the coordinator back.
 */
import type { JsMsg } from '@nats-io/jetstream';
import type { JobCancelReply, NodeActionReply, NodeBusEvent } from '../../src/wire/messages.ts';
import type { NodeAction } from '../../src/wire/subjects.ts';
import type { MemberEnd } from './live.ts';
import type { Batch } from './ports.ts';

/** Effects to run once the pass's batch is committed, in order. */
export type After = Array<() => Promise<void> | void>;

export interface MemberEndInput extends MemberEnd {
  /** The member's node was lost (the job is requeued rather than failed). */
  lost?: boolean;
}

/** A user's cancel, asked of the leader on `<prefix>.coord.jobs.cancel`; `reply` is called after the pass commits. */
export interface CancelInput {
  kind: 'cancel';
  jobId: string;
  reply: (r: JobCancelReply) => void;
}

export type Input =
  | { kind: 'submitted'; ids: string[]; msg?: JsMsg }
  /** A user's cancel, asked by the API (cancel.ts): answered once committed. */
  | CancelInput
  | { kind: 'node-event'; nodeId: string; event: NodeBusEvent; msg?: JsMsg }
  | { kind: 'node-lost'; nodeId: string }
  | { kind: 'node-action'; action: NodeAction; nodeId: string; reason?: string; reply: (r: NodeActionReply) => void }
  | { kind: 'sweep' }
  /** Run a closure inside a pass (the capacity actor's requests that touch nodes). */
  | { kind: 'call'; run: (batch: Batch, after: After) => void };
