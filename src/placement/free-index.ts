/**
 * The free-capacity index behind CapacitySnapshot (ARCHITECTURE.md: "Keep
 * capacity indexed by free-GPU count and pool"). Pure bookkeeping.
 *
 * Ready nodes are split into three groups by which tiers may use them, so the
 * tier rule is answered by the index instead of by visiting nodes:
 *   flex      flex nodes                          (FLEX)
 *   fastIdle  fast nodes holding no FAST job      (FAST, and FLEX on idle fast capacity)
 *   fastBusy  fast nodes holding a FAST job       (FAST only)
 * Nodes that are not schedulable are in no group (counted by the snapshot).
 *
 * Within a group, nodes are bucketed per VRAM level by how many free GPUs
 * they have with at least that VRAM. The levels are 0 plus every distinct
 * GPU VRAM seen, so for a request of V GB per GPU the level to read is the
 * smallest level ≥ V: no GPU has VRAM between V and that level, hence the
 * bucket count is exactly "free GPUs with VRAM ≥ V". Few distinct VRAMs
 * exist (24, 40, 48, 80, 141 …), so a hold moves a node in at most a handful
 * of buckets.
 *
 * Each count is split once more by the node's tightest VRAM at that level:
 * the level of its smallest free GPU with at least the level's VRAM (the
 * GPU bind would take first). So a 40 GB job visits nodes with free 40 GB
 * GPUs before nodes that would give it 80 GB ones, even when the search
 * limit stops after a few nodes and the ids of the 80 GB nodes come first.
 * Nodes with no such GPU (count 0) sit in the slot `levels.length`.
 *
 * Each bucket is an array sorted by nodeId, so a walk visits nodes in a
 * deterministic order that does not depend on the history of holds (first
 * fit and tie-breaking need that). Insert and delete are a binary search plus
 * a splice (a memmove: microseconds even for 10,000 nodes in one bucket).
 */
import type { FreeGpu } from './types.ts';

export const GROUP = { flex: 0, fastIdle: 1, fastBusy: 2 } as const;
export type Group = (typeof GROUP)[keyof typeof GROUP];
const GROUPS: readonly Group[] = [GROUP.flex, GROUP.fastIdle, GROUP.fastBusy];

/** What the index needs of a node; NodeEntry in snapshot.ts provides it. */
export interface Indexable {
  readonly nodeId: string;
  readonly freeGpus: readonly FreeGpu[];
  readonly gpus: readonly { readonly vramGb: number }[];
  /** The group the node is filed under, or null while it is not indexed. Owned by the index. */
  group: Group | null;
  /** Free GPUs with VRAM ≥ levels[i], per level, as filed. Owned by the index. */
  counts: number[];
  /** Per level, the level of the smallest free GPU with VRAM ≥ levels[i] (levels.length: none), as filed. Owned by the index. */
  tight: number[];
}

/** Where a node is filed, as the pipeline may read it. */
export interface Filed {
  readonly group: Group | null;
  readonly counts: readonly number[];
  readonly tight: readonly number[];
}

/** Read side, for the pipeline. */
export interface FreeIndexReader<T> {
  /** Ascending; levels[0] is 0. */
  readonly levels: readonly number[];
  /** The level to read for a request of `vramGb` per GPU, or -1 when no GPU has that much. */
  levelFor(vramGb: number): number;
  /**
   * Nodes of `group` with exactly `count` free GPUs at `level` whose smallest
   * such GPU is of level `tight` (level ≤ tight ≤ levels.length), nodeId
   * ascending. Do not mutate.
   */
  bucket(group: Group, level: number, count: number, tight: number): readonly T[];
  /** One past the largest count with a bucket at this level (buckets may be empty). */
  countLimit(group: Group, level: number): number;
  /** Ready nodes filed under the group. */
  groupSize(group: Group): number;
}

export class FreeIndex<T extends Indexable> implements FreeIndexReader<T> {
  levels: number[] = [0];
  /** buckets[group][level][count][tight] */
  #buckets: T[][][][][] = GROUPS.map(() => [[]]);
  #sizes = [0, 0, 0];

  levelFor(vramGb: number): number {
    const ls = this.levels;
    let lo = 0;
    let hi = ls.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ls[mid]! < vramGb) lo = mid + 1;
      else hi = mid;
    }
    return lo < ls.length ? lo : -1;
  }

  bucket(group: Group, level: number, count: number, tight: number): readonly T[] {
    return this.#buckets[group]![level]?.[count]?.[tight] ?? EMPTY;
  }

  countLimit(group: Group, level: number): number {
    return this.#buckets[group]![level]?.length ?? 0;
  }

  groupSize(group: Group): number {
    return this.#sizes[group]!;
  }

  /** Whether any ready node has a free GPU: a walk over the level-0 buckets (a few dozen), never over nodes. */
  anyFree(): boolean {
    for (const g of GROUPS) {
      const byCount = this.#buckets[g]![0];
      if (!byCount) continue;
      for (let count = 1; count < byCount.length; count++) {
        for (const nodes of byCount[count] ?? []) if (nodes && nodes.length > 0) return true;
      }
    }
    return false;
  }

  /** Adds the node's VRAMs to the levels. True when a level is new: the caller must `rebuild`. */
  learnLevels(node: Indexable): boolean {
    let added = false;
    for (const g of node.gpus) {
      if (this.levels.includes(g.vramGb)) continue;
      this.levels.push(g.vramGb);
      added = true;
    }
    if (added) this.levels.sort((a, b) => a - b);
    return added;
  }

  /** Refiles every node from scratch (after the levels changed). */
  rebuild(nodes: Iterable<T>, groupOf: (node: T) => Group | null): void {
    this.#buckets = GROUPS.map(() => this.levels.map(() => []));
    this.#sizes = [0, 0, 0];
    for (const n of nodes) {
      n.group = null;
      this.file(n, groupOf(n));
    }
  }

  /**
   * Files the node under `group` (null: takes it out) with its current free
   * GPUs. Call after anything that changes its free GPUs or its group.
   */
  file(node: T, group: Group | null): void {
    const old = node.group;
    const [counts, tight] = group === null ? [[], []] : this.#slotsOf(node);
    if (old !== null && old === group) {
      for (let l = 0; l < counts.length; l++) {
        if (counts[l] === node.counts[l] && tight[l] === node.tight[l]) continue;
        this.#remove(old, l, node.counts[l]!, node.tight[l]!, node);
        this.#insert(group, l, counts[l]!, tight[l]!, node);
      }
    } else {
      if (old !== null) {
        for (let l = 0; l < node.counts.length; l++) this.#remove(old, l, node.counts[l]!, node.tight[l]!, node);
        this.#sizes[old]!--;
      }
      if (group !== null) {
        for (let l = 0; l < counts.length; l++) this.#insert(group, l, counts[l]!, tight[l]!, node);
        this.#sizes[group]!++;
      }
    }
    node.group = group;
    node.counts = counts;
    node.tight = tight;
  }

  /** Per level: free GPUs with VRAM ≥ it, and the level of the smallest of them. One merge pass (freeGpus is VRAM-ascending). */
  #slotsOf(node: T): [number[], number[]] {
    const free = node.freeGpus;
    const levels = this.levels;
    const counts = new Array<number>(levels.length);
    const tight = new Array<number>(levels.length);
    let i = 0;
    let t = 0;
    for (let l = 0; l < levels.length; l++) {
      while (i < free.length && free[i]!.vramGb < levels[l]!) i++;
      counts[l] = free.length - i;
      if (i < free.length) {
        // Levels hold every VRAM seen, so free[i]'s VRAM is a level, at or above l.
        if (t < l) t = l;
        while (levels[t]! < free[i]!.vramGb) t++;
        tight[l] = t;
      } else tight[l] = levels.length;
    }
    return [counts, tight];
  }

  #insert(group: Group, level: number, count: number, tight: number, node: T): void {
    const perLevel = this.#buckets[group]![level]!;
    while (perLevel.length <= count) perLevel.push(this.levels.map(() => []).concat([[]]));
    const b = perLevel[count]![tight]!;
    b.splice(lowerBound(b, node.nodeId), 0, node);
  }

  #remove(group: Group, level: number, count: number, tight: number, node: T): void {
    const b = this.#buckets[group]![level]![count]![tight]!;
    const at = lowerBound(b, node.nodeId);
    if (b[at] !== node) throw new Error(`free index: node ${node.nodeId} is not filed where expected`);
    b.splice(at, 1);
  }
}

const EMPTY: readonly never[] = Object.freeze([]);

/** First position whose nodeId is ≥ id. */
function lowerBound(b: readonly Indexable[], id: string): number {
  let lo = 0;
  let hi = b.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (b[mid]!.nodeId < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
