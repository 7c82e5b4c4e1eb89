/**
 * The coordinator's scheduling settings, compiled once from the config
 * (docs/scheduling.md explains each rule). Defaults match the config's, so
 * tests and tools can start a coordinator without a Config.
 */
import type { Config } from '../../src/config/index.ts';
import { FIFO_FIRST_FIT_POLICY, SCALAR_POLICY, type QueuePolicy } from '../../src/placement/index.ts';
import type { OverrunSettings } from './overrun.ts';
import type { Prices } from './ports.ts';

export interface SchedulingSettings {
  policy: QueuePolicy;
  blockMarginSec: number;
  preemptGraceSec: number;
  overrun: OverrunSettings;
  prices: Prices;
}

export const DEFAULT_SCHEDULING: SchedulingSettings = {
  policy: SCALAR_POLICY,
  blockMarginSec: 300,
  preemptGraceSec: 30,
  overrun: { factor: 2, policy: 'extend' },
  prices: { FAST: 2.5, FLEX: 1 },
};

export function schedulingFromConfig(cfg: Config): SchedulingSettings {
  return {
    policy: cfg.SCALAR_SCHEDULER_POLICY === 'fifo-first-fit' ? FIFO_FIRST_FIT_POLICY : SCALAR_POLICY,
    blockMarginSec: cfg.SCALAR_BLOCK_MARGIN_SEC,
    preemptGraceSec: cfg.SCALAR_PREEMPT_GRACE_SEC,
    overrun: { factor: cfg.SCALAR_OVERRUN_FACTOR, policy: cfg.SCALAR_OVERRUN_POLICY },
    prices: { FAST: cfg.SCALAR_PRICE_FAST_GPU_HOUR, FLEX: cfg.SCALAR_PRICE_FLEX_GPU_HOUR },
  };
}
