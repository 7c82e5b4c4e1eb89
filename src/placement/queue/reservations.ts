/**
 * EASY backfill: when could a blocked job start, if nothing new arrived?
 *
 * Every hold is assumed to end at its `endsAt` (the pass's own placements
 * included: they are held with endsAt = now + expected duration). A hold
 * already past its endsAt is assumed to end now: it may end any moment, and
 * pretending it ended in the past would promise a start that cannot happen.
 *
 * Per node the answer is one time, because within this model a node only
 * gains capacity as time goes on (holds end, nothing new starts): walk the
 * node's holds by end time and stop at the first moment one member of the job
 * fits. The node's capacity block bounds that from above: a start later than
 * endsAt − duration − margin is no start at all.
 *
 * Tier rule (the simplest correct one): a FLEX job may start on a fast node
 * only once every FAST hold there has ended; FAST jobs use fast nodes only.
 *
 * Nodes reserved by another job in this pass are skipped: two promises on one
 * node could not both be kept. Capacity the blocked job cannot use (any other
 * node) is not part of its reservation, so later jobs stay free to use it.
 */
import { Pool } from '../../domain/cluster.ts';
import { EPSILON } from '../snapshot.ts';
import type { JobRequest, NodeView, Reservation, SnapshotReader } from '../types.ts';
import { Heap } from './order.ts';

/** Slack for float sums of CPU and RAM: the snapshot's, so that "fits" means the same here as in hold(). */
export const EPS = EPSILON;

export interface EarliestStartOptions {
  now: number;
  /** A node's block must outlive start + expected duration + this margin (seconds). */
  blockMarginSec: number;
  /** Reservations made so far, by node id; a node reserved by another job is skipped. */
  reservations?: ReadonlyMap<string, Reservation>;
  /** Latest end by job id, when sooner than HoldView.endsAt (a hold being preempted ends when its grace runs out). */
  endsBy?: ReadonlyMap<string, number>;
}

export interface EarliestStart {
  startAt: number;
  /** The node(s) achieving it: nodeCount of them, earliest first, ties by node id. */
  nodeIds: string[];
}

/** The pools a tier may use: FAST only fast nodes; FLEX flex nodes and idle fast ones. */
export const POOLS_OF = { FAST: [Pool.fast], FLEX: [Pool.flex, Pool.fast] } as const;

/**
 * The earliest time at which `job` could start (one member on each of
 * nodeCount distinct nodes), with the nodes; undefined when nothing ever
 * frees enough (or every node's block ends too soon).
 *
 * For a gang each node has a window [earliest fit, block deadline]; the
 * answer is the smallest time inside at least nodeCount windows, found by a
 * sweep over the windows' starts with a heap of deadlines: O(n log n).
 */
export function earliestStart(snapshot: SnapshotReader, job: JobRequest, opts: EarliestStartOptions): EarliestStart | undefined {
  const windows: Window[] = [];
  for (const pool of POOLS_OF[job.tier]) {
    for (const node of snapshot.states(pool)) {
      const other = opts.reservations?.get(node.nodeId);
      if (other && other.jobId !== job.jobId) continue;
      const w = nodeWindow(node, job, opts);
      if (w) windows.push(w);
    }
  }
  const count = Math.max(job.nodeCount, 1);
  if (windows.length < count) return undefined;
  windows.sort(byStart);
  if (count === 1) return { startAt: windows[0]!.start, nodeIds: [windows[0]!.nodeId] };

  const open = new Heap<Window>((a, b) => a.deadline < b.deadline);
  for (const w of windows) {
    const at = w.start;
    open.push(w);
    // Windows that closed before `at` stay closed for every later start too.
    while (open.size > 0 && open.peek()!.deadline < at) open.pop();
    if (open.size >= count) {
      const live: Window[] = [];
      while (open.size > 0) live.push(open.pop()!);
      live.sort(byStart);
      return { startAt: at, nodeIds: live.slice(0, count).map((x) => x.nodeId) };
    }
  }
  return undefined;
}

export interface Window {
  nodeId: string;
  start: number;
  deadline: number;
}

const byStart = (a: Window, b: Window): number =>
  a.start - b.start || (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0);

/**
 * When one member of `job` could start on `node`, and until when a start
 * still ends inside the node's block; undefined if never.
 */
export function nodeWindow(node: NodeView, job: JobRequest, opts: EarliestStartOptions): Window | undefined {
  if (!node.schedulable) return undefined;
  const now = opts.now;
  const deadline =
    node.endsAt == null ? Infinity : node.endsAt - job.expectedDurationSec * 1000 - opts.blockMarginSec * 1000;
  if (deadline < now) return undefined;

  const vram = job.gpuCount > 0 ? job.vramPerGpuGb : 0;
  const vramOf = new Map<number, number>();
  for (const g of node.gpus) vramOf.set(g.index, g.vramGb);
  let gpus = 0;
  for (const g of node.freeGpus) if (g.vramGb >= vram) gpus++;
  let cpu = node.cpuFree;
  let ram = node.ramFree;
  const watchFast = job.tier === 'FLEX' && node.pool === Pool.fast;
  let fast = 0;
  if (watchFast) for (const h of node.holds) if (h.tier === 'FAST') fast++;

  const fits = (): boolean =>
    gpus >= job.gpuCount && job.cpuCores <= cpu + EPS && job.ramGb <= ram + EPS && fast === 0;
  if (fits()) return { nodeId: node.nodeId, start: now, deadline };

  const endsBy = opts.endsBy;
  const holds = node.holds
    .map((h) => ({ h, end: Math.max(Math.min(h.endsAt, endsBy?.get(h.jobId) ?? Infinity), now) }))
    .sort((a, b) => a.end - b.end);
  for (let i = 0; i < holds.length; ) {
    const t = holds[i]!.end;
    if (t > deadline) return undefined;
    // Every hold ending at t frees together.
    for (; i < holds.length && holds[i]!.end === t; i++) {
      const h = holds[i]!.h;
      for (const idx of h.gpuIndices) if ((vramOf.get(idx) ?? 0) >= vram) gpus++;
      cpu += h.cpu;
      ram += h.ram;
      if (watchFast && h.tier === 'FAST') fast--;
    }
    if (fits()) return { nodeId: node.nodeId, start: t, deadline };
  }
  return undefined;
}
