/**
 * What the coordinator knows of capacity blocks, and what the capacity actor
 * (actors/capacity/) asks of it: when each block ends (for placement's
 * block_time filter), the demand it scales for, and whether a block's nodes
 * are busy, asked in a pass so no job lands on them in between.
 */
import type { DemandView } from '../../src/capacity/autoscaler.ts';
import type { Clock } from '../../src/domain/clock.ts';
import type { CapacitySnapshot } from '../../src/placement/index.ts';
import type { Input } from './inputs.ts';
import { demandView } from './demand.ts';
import type { Fleet } from './fleet.ts';
import type { JobTable } from './live.ts';

export interface BlockLinkHost {
  jobs: JobTable;
  capacity: CapacitySnapshot;
  fleet: () => Fleet;
  blockMarginSec: number;
  clock: Clock;
  push(input: Input): void;
  kick(): void;
}

export class BlockLink {
  /** Live blocks' end times (ms; null: never), as last read from Postgres or learnt from the capacity actor. */
  private ends = new Map<string, number | null>();
  /**
   * When a block ends, as the capacity actor knows it (set with the actor):
   * it knows a block from its purchase, and the block's nodes can register
   * before the next sweep reads capacity_blocks. Undefined: not a block it knows.
   */
  lookup?: (blockId: string) => number | null | undefined;

  constructor(private readonly h: BlockLinkHost) {}

  /** Takes the live blocks' end times as they are in Postgres (at start and on every sweep); nodes follow the changes. */
  sync(ends: Map<string, number | null>, initial = false): void {
    if (initial) {
      this.ends = ends;
      return;
    }
    for (const [id, end] of ends) if (this.ends.get(id) !== end) this.changed(id, end);
    for (const id of [...this.ends.keys()]) if (!ends.has(id)) this.changed(id, null, true);
  }

  /** Whether the block is live (not released) as far as the coordinator knows. */
  live(blockId: string): boolean {
    return this.ends.has(blockId);
  }

  /**
   * When a block ends (ms; null: never), for a node of it that registers.
   * A block bought since the last sweep is not known yet: without the
   * capacity actor's answer its nodes would look never-ending, and a job
   * longer than the block could be placed there until the sweep.
   */
  end(blockId: string): number | null | undefined {
    if (this.ends.has(blockId)) return this.ends.get(blockId);
    const end = this.lookup?.(blockId);
    if (end !== undefined) this.ends.set(blockId, end);
    return end;
  }

  /** A block was bought, changed or released: nodes of it get its end time. */
  changed(blockId: string, endsAt: number | null, released = false): void {
    if (released) this.ends.delete(blockId);
    else this.ends.set(blockId, endsAt);
    this.h.fleet().blockChanged(blockId, released ? null : endsAt);
    this.h.kick();
  }

  /** What the autoscaler reads. */
  demand(): DemandView {
    return demandView(this.h.jobs, this.h.capacity, this.h.blockMarginSec, this.h.clock.now());
  }

  /** Drains the nodes of a block being released (runs in a pass, like an operator's drain). */
  drainNodes(nodeIds: string[], reason: string): void {
    this.h.push({ kind: 'call', run: () => this.h.fleet().drainAll(nodeIds, reason) });
  }

  /**
   * Drains the block's nodes and answers whether any job holds them, inside
   * a pass: placement runs in passes too, so once this answers, no job can
   * land on them any more (see CapacityActorOptions.closeNodes).
   */
  closeNodes(blockId: string, nodeIds: string[], timeoutMs = 10_000): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      const timer = this.h.clock.setTimeout(() => reject(new Error("the coordinator did not close the block's nodes in time")), timeoutMs);
      this.h.push({
        kind: 'call',
        run: () => {
          this.h.fleet().drainAll(nodeIds, `its capacity block ${blockId} is being released`);
          timer.cancel();
          resolve(nodeIds.some((n) => this.holdsAny(n)));
        },
      });
    });
  }

  /** True while any job holds GPUs on a node of the block. */
  busy(blockId: string): boolean {
    return this.h.fleet().nodesOfBlock(blockId).some((n) => this.holdsAny(n));
  }

  private holdsAny(nodeId: string): boolean {
    return (this.h.capacity.state(nodeId)?.holds.length ?? 0) > 0;
  }
}
