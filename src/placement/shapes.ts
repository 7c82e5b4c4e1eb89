/**
 * The unschedulable check (kube-scheduler's UnschedulableAndUnresolvable):
 * could any node shape ever hold the job, were it empty? The shapes are the
 * distinct shapes of the nodes in the pools the tier may use, in any state
 * (a draining node's shape can come back), plus the offers of those pools
 * (shapes a provider can sell). A job no shape can hold fails fast instead of
 * waiting forever; a gang also fails when the nodes that could hold a member
 * plus the offers' maxNodes total less than nodeCount.
 *
 * Cheap: a fleet has few distinct shapes, and the snapshot keeps a census of
 * them with a version number, so the node part is cached per (version, tier,
 * request) and only the (short) offer list is read on every call.
 */
import { Pool, type Tier } from '../domain/cluster.ts';
import { describeUnschedulable, mergeLargest, noLargest, type Largest } from './diagnosis.ts';
import type { Need } from './filters.ts';
import { EPSILON, type CapacitySnapshot } from './snapshot.ts';
import type { NodeShape } from './types.ts';

/** The pools a tier may use, in order of preference. */
export const POOLS_OF: Record<Tier, readonly Pool[]> = { FAST: [Pool.fast], FLEX: [Pool.flex, Pool.fast] };

interface NodePart {
  /** Existing nodes (any state) that could hold one member when empty. */
  capable: number;
}

interface Cache {
  version: number;
  byRequest: Map<string, NodePart>;
}

/** Past this many distinct requests per snapshot version the cache starts over (bounds memory). */
const CACHE_LIMIT = 4096;
const caches = new WeakMap<CapacitySnapshot, Cache>();

/** Could one empty node of this shape hold one member? */
function holdsMember(vramsDesc: readonly number[], cpu: number, ram: number, need: Need): boolean {
  if (need.cpu > cpu + EPSILON || need.ram > ram + EPSILON) return false;
  // vramsDesc[gpus − 1] is the gpus-th largest GPU: it must reach the ask.
  return need.gpus === 0 || (vramsDesc.length >= need.gpus && vramsDesc[need.gpus - 1]! >= need.vram);
}

const offerHolds = (o: NodeShape, need: Need): boolean =>
  need.cpu <= o.cpu + EPSILON && need.ram <= o.ram + EPSILON && (need.gpus === 0 || (o.gpus >= need.gpus && o.vramPerGpuGb >= need.vram));

function nodePart(snapshot: CapacitySnapshot, need: Need): NodePart {
  let cache = caches.get(snapshot);
  if (!cache || cache.version !== snapshot.shapeVersion || cache.byRequest.size > CACHE_LIMIT) {
    cache = { version: snapshot.shapeVersion, byRequest: new Map() };
    caches.set(snapshot, cache);
  }
  const key = `${need.tier}|${need.gpus}|${need.vram}|${need.cpu}|${need.ram}`;
  let part = cache.byRequest.get(key);
  if (!part) {
    let capable = 0;
    for (const pool of POOLS_OF[need.tier]) {
      for (const s of snapshot.shapes(pool)) if (holdsMember(s.vrams, s.cpu, s.ram, need)) capable += s.count;
    }
    part = { capable };
    cache.byRequest.set(key, part);
  }
  return part;
}

/** The offers of the pools the tier may use. */
export function offersFor(tier: Tier, offers: readonly NodeShape[] | undefined): NodeShape[] {
  return (offers ?? []).filter((o) => POOLS_OF[tier].includes(o.pool));
}

/**
 * Null when some node shape or offer could ever hold the job (nodeCount
 * members on distinct nodes); otherwise the plain-words reason it never can.
 */
export function unschedulableReason(snapshot: CapacitySnapshot, need: Need, offers: readonly NodeShape[]): string | null {
  let capable = nodePart(snapshot, need).capable;
  if (capable >= need.nodeCount) return null;
  for (const o of offers) if (offerHolds(o, need)) capable += o.maxNodes;
  if (capable >= need.nodeCount) return null;

  // Rare: build the "largest" facts for the reason.
  const largest: Largest = noLargest();
  for (const pool of POOLS_OF[need.tier]) for (const s of snapshot.shapes(pool)) mergeLargest(largest, s.vrams, need, s.cpu, s.ram);
  for (const o of offers) mergeLargest(largest, new Array<number>(o.gpus).fill(o.vramPerGpuGb), need, o.cpu, o.ram);
  return describeUnschedulable(need, largest, capable, offers.length > 0);
}
