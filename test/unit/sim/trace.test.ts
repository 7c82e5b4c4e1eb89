import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { TraceError, parseTrace, readTrace } from '../../../src/sim/trace.ts';

const HEADER = 'job_id,submit_time_sec,gpu_count,duration_sec,vram_per_gpu_gb,cpu_cores,ram_gb,user,status';
/** The shipped trace: ../shared/traces/ from the repository root. */
const REAL_TRACE = fileURLToPath(new URL('../../../../shared/traces/itp-cluster04.csv', import.meta.url));

function errorOf(fn: () => unknown): TraceError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TraceError);
    return e as TraceError;
  }
  throw new Error('expected a TraceError');
}

describe('parseTrace', () => {
  it('reads rows, empty cells as null, sorted by submit time with file order for ties', () => {
    const rows = parseTrace(
      [
        HEADER,
        'a,100,1,3600,,,,,',
        'b,50,8,7200,80,32,256,alice,Pass',
        'c,100,2,60.5,,,,,',
        'd,0,4,10,,,,bob,',
        'e,100,1,1,,,,,',
      ].join('\n') + '\n',
      'x.csv',
    );
    expect(rows.map((r) => r.jobId)).toEqual(['d', 'b', 'a', 'c', 'e']);
    expect(rows.map((r) => r.line)).toEqual([5, 3, 2, 4, 6]);
    expect(rows[1]).toEqual({
      jobId: 'b',
      submitSec: 50,
      gpuCount: 8,
      durationSec: 7200,
      vramPerGpuGb: 80,
      cpuCores: 32,
      ramGb: 256,
      user: 'alice',
      status: 'Pass',
      line: 3,
    });
    expect(rows[2]).toMatchObject({ vramPerGpuGb: null, cpuCores: null, ramGb: null, user: null, status: null });
    expect(rows[3]!.durationSec).toBe(60.5);
    expect(rows[0]!.user).toBe('bob');
  });

  it('keeps file order for many equal submit times (stable sort)', () => {
    const ids = Array.from({ length: 50 }, (_, i) => `j${i}`);
    const text = [HEADER, 'late,10,1,1,,,,,', ...ids.map((id) => `${id},5,1,1,,,,,`), 'early,0,1,1,,,,,'].join('\n');
    expect(parseTrace(text).map((r) => r.jobId)).toEqual(['early', ...ids, 'late']);
  });

  it('accepts CRLF, a BOM, blank lines and no trailing newline', () => {
    const text = '\uFEFF' + HEADER + '\r\n\r\na,1,1,10,,,,u1,\r\n   \r\nb,2,2,20,,,,,\r\n';
    const rows = parseTrace(text, 'crlf.csv');
    expect(rows.map((r) => [r.jobId, r.line, r.user, r.status])).toEqual([
      ['a', 3, 'u1', null],
      ['b', 5, null, null],
    ]);
    expect(parseTrace(HEADER + '\na,1,1,10,,,,,').length).toBe(1);
  });

  it('accepts the columns in another order and ignores extra ones', () => {
    const text = ['extra,status,user,ram_gb,cpu_cores,vram_per_gpu_gb,duration_sec,gpu_count,submit_time_sec,job_id', 'zzz,ok,carol,64,8,40,99,2,7,job-1'].join(
      '\n',
    );
    expect(parseTrace(text)).toEqual([
      {
        jobId: 'job-1',
        submitSec: 7,
        gpuCount: 2,
        durationSec: 99,
        vramPerGpuGb: 40,
        cpuCores: 8,
        ramGb: 64,
        user: 'carol',
        status: 'ok',
        line: 2,
      },
    ]);
  });

  it('reads RFC 4180 quoted cells', () => {
    const text = [HEADER, '"a,1",3,"4",100,,,,"Smith, ""J""",""', '"b",1,1,5,,,,  "x"  ,'].join('\n');
    const rows = parseTrace(text);
    expect(rows.map((r) => r.jobId)).toEqual(['b', 'a,1']);
    expect(rows[1]).toMatchObject({ submitSec: 3, gpuCount: 4, user: 'Smith, "J"', status: null });
    expect(rows[0]!.user).toBe('x');
  });

  it('reports quoting errors with the line', () => {
    expect(errorOf(() => parseTrace(`${HEADER}\n"a,1,1,10,,,,,`, 't.csv')).message).toMatch(/^t\.csv line 2: unterminated quoted cell/);
    expect(errorOf(() => parseTrace(`${HEADER}\n"a"b,1,1,10,,,,,`, 't.csv')).message).toMatch(/^t\.csv line 2: unexpected text after the closing quote/);
    expect(errorOf(() => parseTrace(`${HEADER}\na"b,1,1,10,,,,,"`, 't.csv')).message).toMatch(/^t\.csv line 2: stray quote/);
  });

  it.each([
    ['job_id', ',1,1,10,,,,,', 'trace.csv line 3: job_id must not be empty'],
    ['submit_time_sec', 'a,-1,1,10,,,,,', 'trace.csv line 3: submit_time_sec must be a number ≥ 0 (got "-1")'],
    ['submit_time_sec', 'a,,1,10,,,,,', 'trace.csv line 3: submit_time_sec must be a number ≥ 0 (got "")'],
    ['submit_time_sec', 'a,1e999,1,10,,,,,', 'trace.csv line 3: submit_time_sec must be a number ≥ 0 (got "1e999")'],
    ['gpu_count', 'a,1,0,10,,,,,', 'trace.csv line 3: gpu_count must be a whole number ≥ 1 (got "0")'],
    ['gpu_count', 'a,1,1.5,10,,,,,', 'trace.csv line 3: gpu_count must be a whole number ≥ 1 (got "1.5")'],
    ['gpu_count', 'a,1,0x8,10,,,,,', 'trace.csv line 3: gpu_count must be a whole number ≥ 1 (got "0x8")'],
    ['duration_sec', 'a,1,1,0,,,,,', 'trace.csv line 3: duration_sec must be a number > 0 (got "0")'],
    ['duration_sec', 'a,1,1,Infinity,,,,,', 'trace.csv line 3: duration_sec must be a number > 0 (got "Infinity")'],
    ['vram_per_gpu_gb', 'a,1,1,10,0,,,,', 'trace.csv line 3: vram_per_gpu_gb must be empty or a number > 0 (got "0")'],
    ['cpu_cores', 'a,1,1,10,,-2,,,', 'trace.csv line 3: cpu_cores must be empty or a number > 0 (got "-2")'],
    ['ram_gb', 'a,1,1,10,,,lots,,', 'trace.csv line 3: ram_gb must be empty or a number > 0 (got "lots")'],
  ])('rejects a bad %s with file, line and column', (column, row, message) => {
    const e = errorOf(() => parseTrace(`${HEADER}\nok,0,1,1,,,,,\n${row}\n`, 'trace.csv'));
    expect(e.message).toBe(message);
    expect(e.file).toBe('trace.csv');
    expect(e.line).toBe(3);
    expect(e.column).toBe(column);
  });

  it('names both lines of a duplicate job id', () => {
    const e = errorOf(() => parseTrace(`${HEADER}\na,0,1,1,,,,,\nb,0,1,1,,,,,\n\na,5,1,1,,,,,`, 'dup.csv'));
    expect(e.message).toBe('dup.csv line 5: job_id "a" repeats line 2');
    expect(e.line).toBe(5);
  });

  it('rejects a row whose cell count differs from the header', () => {
    expect(errorOf(() => parseTrace(`${HEADER}\na,0,1,1`, 'f.csv')).message).toBe('f.csv line 2: has 4 cells, the header has 9');
    expect(errorOf(() => parseTrace(`${HEADER}\na,0,1,1,,,,,,`, 'f.csv')).message).toBe('f.csv line 2: has 10 cells, the header has 9');
  });

  it('lists the missing header columns', () => {
    const e = errorOf(() => parseTrace('job_id,gpu_count,duration_sec,vram_per_gpu_gb,cpu_cores,ram_gb,status\na,1,1,,,,', 'h.csv'));
    expect(e.message).toMatch(/^h\.csv line 1: header lacks columns submit_time_sec, user \(expected job_id,submit_time_sec,/);
    expect(errorOf(() => parseTrace(`${HEADER},gpu_count\n`, 'h.csv')).message).toBe('h.csv line 1: column gpu_count appears twice in the header');
  });

  it('rejects an empty file and a header without rows', () => {
    expect(errorOf(() => parseTrace('', 'e.csv')).message).toMatch(/^e\.csv: empty file/);
    expect(errorOf(() => parseTrace('\uFEFF\n\n', 'e.csv')).message).toMatch(/^e\.csv: empty file/);
    expect(errorOf(() => parseTrace(`${HEADER}\r\n\r\n`, 'e.csv')).message).toMatch(/^e\.csv: no jobs/);
  });
});

describe('readTrace', () => {
  it('reads a file and names it in errors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'scalar-trace-'));
    try {
      const ok = join(dir, 'ok.csv');
      await writeFile(ok, `${HEADER}\nb,5,1,1,,,,,\na,1,2,3,,,,,\n`);
      expect((await readTrace(ok)).map((r) => r.jobId)).toEqual(['a', 'b']);
      const bad = join(dir, 'bad.csv');
      await writeFile(bad, `${HEADER}\na,1,0,3,,,,,\n`);
      await expect(readTrace(bad)).rejects.toThrow(`${bad} line 2: gpu_count must be a whole number ≥ 1 (got "0")`);
      await expect(readTrace(join(dir, 'nope.csv'))).rejects.toThrow(`trace file not found: ${join(dir, 'nope.csv')}`);
      await expect(readTrace(join(dir, 'nope.csv'))).rejects.toBeInstanceOf(TraceError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  // The shared folder sits next to the repository on the development machines; a bare clone has only the fixture.
  it.skipIf(!existsSync(REAL_TRACE))('reads the shipped ITP cluster04 trace with the README shape', async () => {
    const rows = await readTrace(REAL_TRACE);
    expect(rows.length).toBe(15_802);
    const hist: Record<number, number> = {};
    for (const r of rows) hist[r.gpuCount] = (hist[r.gpuCount] ?? 0) + 1;
    expect(hist).toEqual({ 1: 11_924, 2: 125, 4: 532, 8: 2_779, 16: 182, 32: 254, 64: 6 });
    expect(rows[0]!.submitSec).toBe(0);
    expect(rows.every((r, i) => i === 0 || r.submitSec >= rows[i - 1]!.submitSec)).toBe(true);
    expect(rows.every((r) => r.vramPerGpuGb === null && r.cpuCores === null && r.ramGb === null && r.user === null && r.status === null)).toBe(
      true,
    );
    const gpuHours = rows.reduce((s, r) => s + (r.gpuCount * r.durationSec) / 3600, 0);
    expect(Math.round(gpuHours)).toBeCloseTo(705_683, -1);
  });
});
