import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileTail, MAX_LINE_BYTES } from '../../../src/runtimes/log-tail.ts';
import { collector, removeTempDirs, tempDir } from './helpers.ts';

afterAll(removeTempDirs);

function file(content: string | Buffer = ''): string {
  const p = join(tempDir(), 'stdout.log');
  writeFileSync(p, content);
  return p;
}

describe('FileTail', () => {
  it('emits complete lines with their byte offsets and holds a partial line until its newline', async () => {
    const p = file('ab\ncé\npart');
    const logs = collector();
    const offsets: number[] = [];
    const t = new FileTail(p, 'stdout', 0, logs.sink, (o) => offsets.push(o));
    await t.poll();
    expect(logs.lines.map((l) => [l.line, l.offset])).toEqual([
      ['ab', 0],
      ['cé', 3],
    ]);
    expect(t.offset).toBe(7);
    appendFileSync(p, 'ial\r\nnext');
    await t.poll();
    expect(logs.lines.map((l) => [l.line, l.offset]).slice(2)).toEqual([['partial', 7]]);
    await t.drain();
    expect(logs.lines.map((l) => [l.line, l.offset]).slice(3)).toEqual([['next', 16]]);
    expect(t.offset).toBe(20);
    expect(offsets.at(-1)).toBe(20);
  });

  it('resumes from an offset with the same line offsets', async () => {
    const p = file('one\ntwo\nthree\n');
    const logs = collector();
    await new FileTail(p, 'stderr', 4, logs.sink).drain();
    expect(logs.lines.map((l) => [l.stream, l.line, l.offset])).toEqual([
      ['stderr', 'two', 4],
      ['stderr', 'three', 8],
    ]);
  });

  it('keeps empty lines and replaces invalid UTF-8', async () => {
    const p = file(Buffer.from([0x61, 0x0a, 0x0a, 0xff, 0x62, 0xc3, 0x0a]));
    const logs = collector();
    await new FileTail(p, 'stdout', 0, logs.sink).drain();
    expect(logs.lines.map((l) => l.line)).toEqual(['a', '', '\uFFFDb\uFFFD']);
  });

  it('splits lines longer than 64 KiB, at a character boundary, the same way however it is read', async () => {
    // 'é' is 2 bytes; an odd prefix puts a character across the 64 KiB mark.
    const long = 'x' + 'é'.repeat(MAX_LINE_BYTES); // 1 + 128 KiB bytes
    const p = file(long + '\nend\n');
    const whole = collector();
    await new FileTail(p, 'stdout', 0, whole.sink).drain();
    const pieces = whole.lines.slice(0, -1);
    expect(pieces.map((l) => l.line).join('')).toBe(long);
    expect(pieces.every((l) => Buffer.byteLength(l.line) <= MAX_LINE_BYTES)).toBe(true);
    expect(pieces.every((l) => !l.line.includes('\uFFFD'))).toBe(true);
    expect(pieces[0]!.offset).toBe(0);
    expect(pieces[1]!.offset).toBe(Buffer.byteLength(pieces[0]!.line));
    expect(whole.lines.at(-1)).toMatchObject({ line: 'end', offset: Buffer.byteLength(long) + 1 });

    // Written in dribs and drabs, polled in between: the same lines.
    const p2 = file('');
    const bit = collector();
    const t = new FileTail(p2, 'stdout', 0, bit.sink);
    const bytes = Buffer.from(long + '\nend\n');
    for (let i = 0; i < bytes.length; i += 10_000) {
      appendFileSync(p2, bytes.subarray(i, i + 10_000));
      await t.poll();
    }
    await t.drain();
    expect(bit.lines.map((l) => [l.line, l.offset])).toEqual(whole.lines.map((l) => [l.line, l.offset]));
  });

  it('reads nothing from a file that is not there yet', async () => {
    const logs = collector();
    const t = new FileTail(join(tempDir(), 'missing.log'), 'stdout', 0, logs.sink);
    await t.poll();
    await t.drain();
    expect(logs.lines).toEqual([]);
  });

  it('survives a sink that throws', async () => {
    const p = file('a\nb\n');
    const seen: string[] = [];
    await new FileTail(p, 'stdout', 0, (l) => {
      seen.push(l.line);
      throw new Error('boom');
    }).drain();
    expect(seen).toEqual(['a', 'b']);
  });
});
