/**
 * capacity_blocks and capacity_events in memory, for the capacity actor in a
 * replay (CapacityStorePort; the Postgres one is actors/capacity/store.ts).
 * The simulator reads the blocks back for the cost it reports.
 */
import type { CapacityTier } from '../../capacity/provider.ts';
import { StaleBlockWriteError, type BlockRow, type CapacityEventInput, type CapacityStorePort, type StatusWrite } from '../../../actors/capacity/ports.ts';

export interface MemoryCapacityEvent extends CapacityEventInput {
  at: number;
}

export class MemoryCapacityStore implements CapacityStorePort {
  /** Every block ever bought, in purchase order. */
  readonly blocks = new Map<string, BlockRow>();
  readonly events: MemoryCapacityEvent[] = [];

  async insertBlock(b: BlockRow, event: CapacityEventInput): Promise<void> {
    if (this.blocks.has(b.id)) throw new Error(`block ${b.id} exists`);
    this.blocks.set(b.id, { ...b });
    this.events.push({ ...event, at: b.createdAt.getTime() });
  }

  async writeStatus(blockId: string, w: StatusWrite, event: CapacityEventInput): Promise<BlockRow> {
    const row = this.blocks.get(blockId);
    if (!row || row.status !== w.from) throw new StaleBlockWriteError(blockId, w.from);
    Object.assign(row, { status: w.to, statusReason: w.statusReason, updatedAt: w.at, releasedAt: w.to === 'released' ? w.at : row.releasedAt });
    this.events.push({ ...event, at: w.at.getTime() });
    return { ...row };
  }

  async appendEvents(events: CapacityEventInput[], at: Date): Promise<void> {
    for (const e of events) this.events.push({ ...e, at: at.getTime() });
  }

  async liveBlocks(): Promise<BlockRow[]> {
    return [...this.blocks.values()].filter((b) => b.status !== 'released').map((b) => ({ ...b }));
  }

  async allBlocks(limit = 1000): Promise<BlockRow[]> {
    return [...this.blocks.values()].reverse().slice(0, limit).map((b) => ({ ...b }));
  }

  async block(id: string): Promise<BlockRow | null> {
    const b = this.blocks.get(id);
    return b ? { ...b } : null;
  }

  async lastChanges(): Promise<{ lastBuyAt: Record<CapacityTier, number | null>; lastChangeAt: Record<CapacityTier, number | null> }> {
    const out = { lastBuyAt: { fast: null, flex: null }, lastChangeAt: { fast: null, flex: null } } as {
      lastBuyAt: Record<CapacityTier, number | null>;
      lastChangeAt: Record<CapacityTier, number | null>;
    };
    for (const e of this.events) {
      if (!e.tier || !['buy', 'release', 'drain'].includes(e.action)) continue;
      if (e.action === 'buy') out.lastBuyAt[e.tier] = Math.max(out.lastBuyAt[e.tier] ?? 0, e.at);
      out.lastChangeAt[e.tier] = Math.max(out.lastChangeAt[e.tier] ?? 0, e.at);
    }
    return out;
  }

  /** When each live block ends (ms), as the coordinator's sweep reads capacity_blocks. */
  blockEnds(): Map<string, number | null> {
    const ends = new Map<string, number | null>();
    for (const b of this.blocks.values()) if (b.status !== 'released') ends.set(b.id, b.endsAt?.getTime() ?? null);
    return ends;
  }
}
