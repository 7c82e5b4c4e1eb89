import { describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/db/group-commit.ts';

const tick = () => new Promise((r) => setImmediate(r));

describe('GroupCommitter', () => {
  it('writes items submitted together in one batch and answers each with its own result', async () => {
    const batches: number[][] = [];
    const gc = new GroupCommitter<number, number>(
      async (items) => {
        batches.push(items);
        return items.map((i) => i * 10);
      },
      { maxBatch: 100, maxInFlight: 1 },
    );
    const results = await Promise.all([1, 2, 3, 4].map((i) => gc.submit(i)));
    expect(results).toEqual([10, 20, 30, 40]);
    expect(batches).toEqual([[1, 2, 3, 4]]);
  });

  it('queues items that arrive during a write into the next batch, bounded by maxBatch', async () => {
    const batches: number[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const gc = new GroupCommitter<number, void>(
      async (items) => {
        batches.push(items);
        if (batches.length === 1) await gate;
        return items.map(() => undefined);
      },
      { maxBatch: 2, maxInFlight: 1 },
    );
    const first = gc.submit(0);
    await tick();
    const rest = [1, 2, 3, 4, 5].map((i) => gc.submit(i));
    await tick();
    expect(batches).toEqual([[0]]); // still writing the first batch
    release();
    await Promise.all([first, ...rest]);
    expect(batches).toEqual([[0], [1, 2], [3, 4], [5]]);
  });

  it('fails every caller of a failed batch, and only them', async () => {
    let n = 0;
    const gc = new GroupCommitter<number, number>(
      async (items) => {
        if (n++ === 0) throw new Error('commit failed');
        return items;
      },
      { maxBatch: 10, maxInFlight: 1 },
    );
    const a = gc.submit(1);
    const b = gc.submit(2);
    await expect(a).rejects.toThrow('commit failed');
    await expect(b).rejects.toThrow('commit failed');
    await expect(gc.submit(3)).resolves.toBe(3);
  });

  it('drain() waits for queued and in-flight writes', async () => {
    const written: number[] = [];
    const gc = new GroupCommitter<number, void>(
      async (items) => {
        await new Promise((r) => setTimeout(r, 20));
        written.push(...items);
        return items.map(() => undefined);
      },
      { maxBatch: 1, maxInFlight: 1 },
    );
    void gc.submit(1);
    void gc.submit(2);
    await gc.drain();
    expect(written).toEqual([1, 2]);
    await gc.drain(); // idle: resolves at once
  });
});
