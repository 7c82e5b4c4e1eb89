/** Queue discipline: order, EASY backfill and preemption over the placement pipeline. */
export { compareArrival, compareQueue, queueOrder, type QueueOrder } from './order.ts';
export { earliestStart, nodeWindow, type EarliestStart, type EarliestStartOptions } from './reservations.ts';
export { planPreemption, cheapestCover, MAX_CANDIDATES_PER_NODE, type PreemptionOptions, type PreemptionPlan } from './preemption.ts';
export { scheduleQueue, runQueue, MAX_RESERVATION_TRIES, type QueueSnapshot, type Placer, type RunOptions } from './schedule.ts';
