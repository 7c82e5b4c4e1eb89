/**
 * Reading a job trace (format: ../shared/traces/README.md).
 *
 * A trace is a CSV file whose header names the nine columns
 *   job_id,submit_time_sec,gpu_count,duration_sec,vram_per_gpu_gb,cpu_cores,ram_gb,user,status
 * in any order (matched after trimming, case-insensitively); extra columns
 * are ignored, missing ones are an error. CRLF or LF line ends, a UTF-8 BOM
 * and blank lines are accepted; cells may be double-quoted as in RFC 4180
 * ("" inside quotes is one "), but a quoted cell cannot span lines.
 *
 * Required: job_id (non-empty, unique), submit_time_sec (finite, ≥ 0),
 * gpu_count (whole number ≥ 1), duration_sec (finite, > 0). Optional (an
 * empty cell reads as null): vram_per_gpu_gb, cpu_cores, ram_gb (numbers
 * > 0), user, status (text). Unquoted cells are trimmed; numbers are plain
 * decimals (`12`, `3.5`, `1e3`), not hex or `Infinity`.
 *
 * Rows come back sorted by submit time; rows submitted at the same second
 * keep file order. Every problem is a TraceError whose message names the
 * file, the 1-based line and the column.
 */
import { readFile } from 'node:fs/promises';
import type { TraceRow } from './types.ts';

export const TRACE_COLUMNS = [
  'job_id',
  'submit_time_sec',
  'gpu_count',
  'duration_sec',
  'vram_per_gpu_gb',
  'cpu_cores',
  'ram_gb',
  'user',
  'status',
] as const;
export type TraceColumn = (typeof TRACE_COLUMNS)[number];

export class TraceError extends Error {
  override name = 'TraceError';
  constructor(
    message: string,
    /** The file as named to the reader. */
    readonly file: string,
    /** 1-based line, when the problem has one. */
    readonly line?: number,
    /** The column, when the problem has one. */
    readonly column?: string,
  ) {
    super(message);
  }
}

function fail(file: string, line: number, what: string, column?: string): never {
  throw new TraceError(`${file} line ${line}: ${what}`, file, line, column);
}

const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** A plain decimal number, or NaN. */
function num(s: string): number {
  return NUMBER.test(s) ? Number(s) : Number.NaN;
}

/**
 * Split one line into cells. Fast path when the line has no quote; otherwise
 * RFC 4180 quoting (a cell that starts with `"` runs to the next lone `"`,
 * `""` inside it is one `"`). Unquoted cells are trimmed; quoted ones are kept
 * as written (whitespace around the quotes is allowed).
 */
function splitLine(text: string, file: string, line: number): string[] {
  if (!text.includes('"')) {
    const cells = text.split(',');
    for (let i = 0; i < cells.length; i++) cells[i] = cells[i]!.trim();
    return cells;
  }
  const cells: string[] = [];
  let i = 0;
  const n = text.length;
  for (;;) {
    // Skip leading blanks of the cell.
    let j = i;
    while (j < n && (text[j] === ' ' || text[j] === '\t')) j++;
    if (j < n && text[j] === '"') {
      let value = '';
      let k = j + 1;
      for (;;) {
        const q = text.indexOf('"', k);
        if (q < 0) fail(file, line, `unterminated quoted cell (cell ${cells.length + 1}; a quoted cell cannot span lines)`);
        value += text.slice(k, q);
        if (text[q + 1] === '"') {
          value += '"';
          k = q + 2;
        } else {
          k = q + 1;
          break;
        }
      }
      while (k < n && (text[k] === ' ' || text[k] === '\t')) k++;
      cells.push(value);
      if (k >= n) return cells;
      if (text[k] !== ',') fail(file, line, `unexpected text after the closing quote of cell ${cells.length}`);
      i = k + 1;
    } else {
      const c = text.indexOf(',', i);
      const end = c < 0 ? n : c;
      const cell = text.slice(i, end).trim();
      if (cell.includes('"')) fail(file, line, `stray quote in cell ${cells.length + 1} (quote the whole cell and write "" for a quote)`);
      cells.push(cell);
      if (c < 0) return cells;
      i = c + 1;
    }
  }
}

/** Parse a trace held in memory; `file` names it in error messages. */
export function parseTrace(text: string, file = 'trace'): TraceRow[] {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const lines = text.split('\n');

  // Header: the first non-blank line.
  let h = 0;
  while (h < lines.length && lines[h]!.trim() === '') h++;
  if (h >= lines.length) {
    throw new TraceError(`${file}: empty file; expected a header line ${TRACE_COLUMNS.join(',')}`, file);
  }
  const headerLine = h + 1;
  const header = splitLine(stripCr(lines[h]!), file, headerLine).map((c) => c.trim().toLowerCase());
  const at = new Map<string, number>();
  header.forEach((name, i) => {
    if ((TRACE_COLUMNS as readonly string[]).includes(name)) {
      if (at.has(name)) fail(file, headerLine, `column ${name} appears twice in the header`, name);
      at.set(name, i);
    }
  });
  const missing = TRACE_COLUMNS.filter((c) => !at.has(c));
  if (missing.length > 0) {
    fail(
      file,
      headerLine,
      `header lacks column${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (expected ${TRACE_COLUMNS.join(',')}, in any order)`,
    );
  }
  const col = (c: TraceColumn): number => at.get(c)!;
  const cJob = col('job_id');
  const cSubmit = col('submit_time_sec');
  const cGpus = col('gpu_count');
  const cDur = col('duration_sec');
  const cVram = col('vram_per_gpu_gb');
  const cCpu = col('cpu_cores');
  const cRam = col('ram_gb');
  const cUser = col('user');
  const cStatus = col('status');
  const width = header.length;

  const rows: TraceRow[] = [];
  const seen = new Map<string, number>();
  for (let i = h + 1; i < lines.length; i++) {
    const raw = stripCr(lines[i]!);
    if (raw.trim() === '') continue;
    const line = i + 1;
    const cells = splitLine(raw, file, line);
    if (cells.length !== width) {
      fail(file, line, `has ${cells.length} cell${cells.length === 1 ? '' : 's'}, the header has ${width}`);
    }

    const jobId = cells[cJob]!;
    if (jobId === '') fail(file, line, 'job_id must not be empty', 'job_id');
    const first = seen.get(jobId);
    if (first !== undefined) fail(file, line, `job_id "${jobId}" repeats line ${first}`, 'job_id');
    seen.set(jobId, line);

    const submitCell = cells[cSubmit]!;
    const submitSec = num(submitCell);
    if (!(Number.isFinite(submitSec) && submitSec >= 0)) {
      fail(file, line, `submit_time_sec must be a number ≥ 0 (got "${submitCell}")`, 'submit_time_sec');
    }
    const gpuCell = cells[cGpus]!;
    const gpuCount = num(gpuCell);
    if (!(Number.isSafeInteger(gpuCount) && gpuCount >= 1)) {
      fail(file, line, `gpu_count must be a whole number ≥ 1 (got "${gpuCell}")`, 'gpu_count');
    }
    const durCell = cells[cDur]!;
    const durationSec = num(durCell);
    if (!(Number.isFinite(durationSec) && durationSec > 0)) {
      fail(file, line, `duration_sec must be a number > 0 (got "${durCell}")`, 'duration_sec');
    }

    const user = cells[cUser]!;
    const status = cells[cStatus]!;
    rows.push({
      jobId,
      submitSec,
      gpuCount,
      durationSec,
      vramPerGpuGb: optionalPositive(cells[cVram]!, 'vram_per_gpu_gb', file, line),
      cpuCores: optionalPositive(cells[cCpu]!, 'cpu_cores', file, line),
      ramGb: optionalPositive(cells[cRam]!, 'ram_gb', file, line),
      user: user === '' ? null : user,
      status: status === '' ? null : status,
      line,
    });
  }
  if (rows.length === 0) throw new TraceError(`${file}: no jobs (the file has a header but no rows)`, file);

  // Array.prototype.sort is stable: equal submit times keep file order.
  // Skip the sort when the file is already in order (the usual case).
  let sorted = true;
  for (let i = 1; i < rows.length; i++) {
    if (rows[i]!.submitSec < rows[i - 1]!.submitSec) {
      sorted = false;
      break;
    }
  }
  if (!sorted) rows.sort((a, b) => a.submitSec - b.submitSec);
  return rows;
}

function stripCr(s: string): string {
  return s.endsWith('\r') ? s.slice(0, -1) : s;
}

function optionalPositive(cell: string, column: TraceColumn, file: string, line: number): number | null {
  if (cell === '') return null;
  const v = num(cell);
  if (!(Number.isFinite(v) && v > 0)) fail(file, line, `${column} must be empty or a number > 0 (got "${cell}")`, column);
  return v;
}

/** Read and parse a trace file; error messages name it as `path` was given. */
export async function readTrace(path: string): Promise<TraceRow[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new TraceError(`trace file not found: ${path}`, path);
    if (code === 'EISDIR') throw new TraceError(`trace file is a directory: ${path}`, path);
    throw new TraceError(`cannot read trace file ${path}: ${(e as Error).message}`, path);
  }
  return parseTrace(text, path);
}
