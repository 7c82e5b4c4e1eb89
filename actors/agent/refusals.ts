/**
 * The commands this agent refused to carry out, counted by reason and each
 * logged with its job, attempt and reason. A refused command is acked (it is
 * never redelivered): the coordinator re-sends what it still wants, signed
 * afresh. The reasons are the signature check's (src/wire/signing.ts) plus
 * `replayed`: a `run` for an attempt this node has already taken, which
 * never launches twice.
 */
import type { Logger } from 'pino';
import { COMMAND_REFUSALS } from '../../src/wire/signing.ts';

export const REFUSAL_REASONS = [...COMMAND_REFUSALS, 'replayed'] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** What is known of the refused command: nothing when its body did not parse. */
export interface RefusedCommand {
  type?: string;
  job_id?: string;
  attempt?: number;
}

export class Refusals {
  private readonly counts = Object.fromEntries(REFUSAL_REASONS.map((r) => [r, 0])) as Record<RefusalReason, number>;

  constructor(private readonly log: Logger) {}

  /** Counts by reason since the agent started. */
  snapshot(): Readonly<Record<RefusalReason, number>> {
    return { ...this.counts };
  }

  /** Counts one refusal that its caller logs in its own words. */
  count(reason: RefusalReason): void {
    this.counts[reason]++;
  }

  /**
   * Counts and logs one refusal: `warn` for what only a fault or an attacker
   * sends, `error` for a body that does not parse.
   */
  note(reason: RefusalReason, cmd: RefusedCommand | null, detail: string, level: 'info' | 'warn' | 'error' = 'warn'): void {
    this.count(reason);
    this.log[level]({ job_id: cmd?.job_id, attempt: cmd?.attempt, type: cmd?.type, reason, detail }, `command refused (${reason}): nothing runs`);
  }
}
