/**
 * The GPUs of a node: told (`--gpus 8x80`, for simulated nodes and tests)
 * or discovered with nvidia-smi.
 */
import { execFile } from 'node:child_process';
import type { GpuInfo } from '../domain/cluster.ts';

/**
 * `8x80` (8 GPUs of 80 GB) or groups such as `4x40,4x80`: indices 0..n-1 in
 * the order given, uuid `GPU-sim-<index>`, model `Simulated <vram>GB`.
 */
export function parseGpuSpec(spec: string): GpuInfo[] {
  const groups = spec.split(',').map((g) => g.trim());
  if (spec.trim() === '') throw new Error('GPU spec is empty: expected <count>x<vram_gb>[,<count>x<vram_gb>...], e.g. 8x80');
  const gpus: GpuInfo[] = [];
  for (const g of groups) {
    const m = /^(\d+)\s*[xX]\s*(\d+)$/.exec(g);
    const count = Number(m?.[1]);
    const vram = Number(m?.[2]);
    if (!m || count < 1 || vram < 1) {
      throw new Error(
        `bad GPU spec ${JSON.stringify(spec)}: ${JSON.stringify(g)} is not <count>x<vram_gb> with both at least 1 (e.g. 8x80 or 4x40,4x80)`,
      );
    }
    for (let i = 0; i < count; i++) {
      const index = gpus.length;
      gpus.push({ index, uuid: `GPU-sim-${index}`, model: `Simulated ${vram}GB`, vram_gb: vram });
    }
  }
  return gpus;
}

export const NVIDIA_SMI_ARGS = ['--query-gpu=index,uuid,name,memory.total', '--format=csv,noheader,nounits'];

/**
 * The output of `nvidia-smi --query-gpu=index,uuid,name,memory.total
 * --format=csv,noheader,nounits`: one `index, uuid, name, MiB` line per GPU.
 * vram_gb is MiB / 1024 rounded (81559 MiB -> 80).
 */
export function parseNvidiaSmiCsv(text: string): GpuInfo[] {
  const gpus: GpuInfo[] = [];
  for (const [n, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '') continue;
    const fields = line.split(',').map((f) => f.trim());
    const bad = (why: string) => new Error(`nvidia-smi output line ${n + 1} (${JSON.stringify(line)}): ${why}`);
    if (fields.length < 4) throw bad('expected index, uuid, name, memory.total');
    const index = Number(fields[0]);
    const uuid = fields[1] ?? '';
    // A name with a comma in it would have been split: join the middle back.
    const model = fields.slice(2, -1).join(', ');
    const mib = Number(fields[fields.length - 1]);
    if (!Number.isInteger(index) || index < 0) throw bad(`index ${JSON.stringify(fields[0])} is not a number`);
    if (uuid === '') throw bad('no uuid');
    if (!Number.isFinite(mib) || mib <= 0) throw bad(`memory.total ${JSON.stringify(fields[fields.length - 1])} is not a number of MiB`);
    gpus.push({ index, uuid, model, vram_gb: Math.round(mib / 1024) });
  }
  return gpus;
}

/**
 * The host's GPUs from nvidia-smi; null when nvidia-smi is not installed.
 * Throws (with nvidia-smi's stderr) when it is there but fails, as it does
 * when the driver is not loaded.
 */
export function discoverGpus(opts: { bin?: string; timeoutMs?: number } = {}): Promise<GpuInfo[] | null> {
  const bin = opts.bin ?? 'nvidia-smi';
  return new Promise((resolve, reject) => {
    execFile(bin, NVIDIA_SMI_ARGS, { timeout: opts.timeoutMs ?? 15_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return resolve(null);
        const why = (stderr || stdout).trim() || err.message;
        return reject(new Error(`${bin} failed: ${why}`));
      }
      try {
        resolve(parseNvidiaSmiCsv(stdout));
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}
