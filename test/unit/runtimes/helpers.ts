import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LogLine, RunSpec } from '../../../src/runtimes/types.ts';

const dirs: string[] = [];

export function tempDir(prefix = 'scalar-rt-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export function removeTempDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export function spec(over: Partial<RunSpec> = {}): RunSpec {
  return {
    jobId: 'job-1',
    attempt: 1,
    gpuIndices: [],
    image: 'busybox:1.36',
    command: ['true'],
    env: {},
    cpuCores: 1,
    ramGb: 1,
    expectedDurationSec: 1,
    workDir: over.workDir ?? tempDir(),
    ...over,
  };
}

/** A sink that keeps what it is given. */
export function collector() {
  const lines: LogLine[] = [];
  return {
    lines,
    sink: (l: LogLine) => void lines.push(l),
    of: (stream: 'stdout' | 'stderr') => lines.filter((l) => l.stream === stream).map((l) => l.line),
  };
}

export async function waitFor(pred: () => boolean, ms = 2000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
