/**
 * Phrase helpers for the plain words users read (status_reason). The filter
 * plugins word their own causes with these, and diagnosis.ts puts the
 * sentence together; kept apart so the plugins need not import the wording.
 */
import type { Tier } from '../domain/cluster.ts';

export const plural = (n: number, one: string, many: string): string => (n === 1 ? one : many);
export const cores = (n: number): string => `${n} CPU ${plural(n, 'core', 'cores')}`;

/** "2 GPUs with ≥ 80 GB", "1 GPU". */
export function gpuPhrase(count: number, vram: number): string {
  return `${count} ${plural(count, 'GPU', 'GPUs')}${vram > 0 ? ` with ≥ ${vram} GB` : ''}`;
}

/** "fast" or "flex or fast": the pools a tier may use, as the reasons name them. */
export const poolsPhrase = (tier: Tier): string => (tier === 'FLEX' ? 'flex or fast' : 'fast');
