/**
 * Queue order for one pass: which waiting job is considered next.
 *
 * Three disciplines (QueuePolicy):
 * - strictArrival: seq only, ignoring tier and priority (the fifo baseline);
 * - fairShare off: FAST before FLEX, then higher priority, then seq;
 * - fairShare on: the same tiers and priorities, but inside one (tier,
 *   priority) group the next job comes from the user with the smallest
 *   weighted dominant share over GPUs (DRF with one resource), each user's
 *   own jobs in seq order.
 *
 * The fair order is dynamic: a user's share grows as the pass places their
 * jobs, so the order is an iterator that is told about placements. Users sit
 * in a binary heap, so picking the next job costs O(log users), not a scan.
 */
import type { JobRequest, QueuePolicy, SnapshotReader } from '../types.ts';

/** Arrival order: seq, then jobId so that equal seqs still order deterministically. */
export function compareArrival(a: JobRequest, b: JobRequest): number {
  if (a.seq !== b.seq) return a.seq - b.seq;
  return a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0;
}

/** Tier order: FAST before FLEX, then higher priority, then arrival. */
export function compareQueue(a: JobRequest, b: JobRequest): number {
  if (a.tier !== b.tier) return a.tier === 'FAST' ? -1 : 1;
  if (a.priority !== b.priority) return b.priority - a.priority;
  return compareArrival(a, b);
}

export interface QueueOrder {
  /** The next job to consider, or undefined once every job was returned. */
  next(): JobRequest | undefined;
  /** The job last returned by next() was placed: its user's share grows by its GPUs (all nodes). */
  placed(job: JobRequest): void;
}

/** What the fair order reads: GPUs held per user and in total. */
export type ShareReader = Pick<SnapshotReader, 'userGpus' | 'totalGpus'>;

/**
 * The order of `jobs` under `policy`. For fair share, each user's share is
 * (snapshot.userGpus at the start of the pass + GPUs placed for them in this
 * pass) / snapshot.totalGpus() / weight. The start value is read once, here,
 * because the pass holds its placements in the same snapshot (reading it
 * later would count them twice). Throws on a weight that is not a positive
 * finite number: that is a configuration bug, not a queue state.
 */
export function queueOrder(
  jobs: readonly JobRequest[],
  snapshot: ShareReader,
  policy: QueuePolicy,
  weights?: ReadonlyMap<string, number>,
): QueueOrder {
  if (policy.strictArrival) return listOrder([...jobs].sort(compareArrival));
  const sorted = [...jobs].sort(compareQueue);
  if (!policy.fairShare) return listOrder(sorted);
  return new FairOrder(sorted, snapshot, weights);
}

function listOrder(sorted: JobRequest[]): QueueOrder {
  let i = 0;
  return { next: () => sorted[i++], placed: () => undefined };
}

interface UserQueue {
  userId: string;
  jobs: JobRequest[];
  head: number;
  /** Cached key for the heap: weighted share when pushed. */
  share: number;
}

class FairOrder implements QueueOrder {
  readonly #sorted: JobRequest[];
  readonly #weights: ReadonlyMap<string, number> | undefined;
  readonly #total: number;
  /** GPUs per user: held at the start of the pass plus placed since. */
  readonly #gpus = new Map<string, number>();
  /** Where the next (tier, priority) group starts in #sorted. */
  #groupStart = 0;
  readonly #heap = new Heap<UserQueue>(lessUser);
  /** The user whose job was returned last; pushed back on the next call, after placed() may have raised its share. */
  #current: UserQueue | undefined;

  constructor(sorted: JobRequest[], snapshot: ShareReader, weights: ReadonlyMap<string, number> | undefined) {
    this.#sorted = sorted;
    this.#weights = weights;
    // A fleet without GPUs still orders by GPUs held; dividing by 1 keeps shares finite.
    this.#total = Math.max(snapshot.totalGpus(), 1);
    for (const [userId, w] of weights ?? []) {
      if (!(Number.isFinite(w) && w > 0)) throw new Error(`fair-share weight of user ${userId} must be a positive number, got ${w}`);
    }
    for (const job of sorted) if (!this.#gpus.has(job.userId)) this.#gpus.set(job.userId, snapshot.userGpus(job.userId));
  }

  next(): JobRequest | undefined {
    const cur = this.#current;
    if (cur && cur.head < cur.jobs.length) this.#push(cur);
    this.#current = undefined;
    if (this.#heap.size === 0 && !this.#openGroup()) return undefined;
    const user = this.#heap.pop()!;
    this.#current = user;
    return user.jobs[user.head++];
  }

  placed(job: JobRequest): void {
    this.#gpus.set(job.userId, (this.#gpus.get(job.userId) ?? 0) + job.gpuCount * job.nodeCount);
  }

  #push(user: UserQueue): void {
    user.share = (this.#gpus.get(user.userId) ?? 0) / this.#total / (this.#weights?.get(user.userId) ?? 1);
    this.#heap.push(user);
  }

  /** Loads the next (tier, priority) group into the heap; false when none is left. */
  #openGroup(): boolean {
    const sorted = this.#sorted;
    const start = this.#groupStart;
    if (start >= sorted.length) return false;
    const first = sorted[start]!;
    const users = new Map<string, UserQueue>();
    let end = start;
    for (; end < sorted.length; end++) {
      const job = sorted[end]!;
      if (job.tier !== first.tier || job.priority !== first.priority) break;
      let u = users.get(job.userId);
      if (!u) users.set(job.userId, (u = { userId: job.userId, jobs: [], head: 0, share: 0 }));
      u.jobs.push(job); // already in seq order within the group
    }
    this.#groupStart = end;
    for (const u of users.values()) this.#push(u);
    return true;
  }
}

/** Smaller share first; ties by the head job's arrival. */
function lessUser(a: UserQueue, b: UserQueue): boolean {
  if (a.share !== b.share) return a.share < b.share;
  return compareArrival(a.jobs[a.head]!, b.jobs[b.head]!) < 0;
}

/** A binary min-heap under `less`. */
export class Heap<T> {
  readonly #items: T[] = [];
  readonly #less: (a: T, b: T) => boolean;

  constructor(less: (a: T, b: T) => boolean) {
    this.#less = less;
  }

  get size(): number {
    return this.#items.length;
  }

  peek(): T | undefined {
    return this.#items[0];
  }

  push(item: T): void {
    const a = this.#items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }

  pop(): T | undefined {
    const a = this.#items;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.#less(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.#less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}
