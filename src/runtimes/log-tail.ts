/**
 * Follows one log file an attempt appends to and hands its lines to a sink.
 *
 * Lines are split on '\n' (a trailing '\r' is dropped), decoded as UTF-8 with
 * U+FFFD for invalid bytes, and capped at MAX_LINE_BYTES (a longer line is
 * split, at a character boundary where there is one). Each line's `offset`
 * is the byte offset of its first byte in the file, so the same bytes read
 * again after an agent restart carry the same offsets.
 *
 * `offset` (the property) is where to resume: the first byte not yet given
 * to the sink as (part of) a line. A partial last line stays pending until
 * its newline arrives or `drain()` is called at the end of the attempt.
 */
import { open, stat } from 'node:fs/promises';
import type { LogSink, LogStream } from './types.ts';

export const MAX_LINE_BYTES = 64 * 1024;
const READ_CHUNK = 256 * 1024;

/** Where to cut `bytes` (longer than `max`) so that no UTF-8 sequence is split, if possible. */
function cutAt(bytes: Buffer, max: number): number {
  let cut = max;
  for (let back = 0; back < 4 && cut > 0; back++, cut--) {
    if (((bytes[cut] ?? 0) & 0xc0) !== 0x80) return cut; // not a continuation byte: a character starts here
  }
  return max; // not UTF-8 around here: cut anywhere
}

export class FileTail {
  /** Absolute offset of `pending[0]`: where a restarted tail resumes. */
  private pendingStart: number;
  /** Bytes read but not yet emitted (at most MAX_LINE_BYTES, without '\n'). */
  private pending: Buffer = Buffer.alloc(0);
  /** Absolute offset of the next byte to read. */
  private readPos: number;
  private busy: Promise<void> = Promise.resolve();

  constructor(
    readonly path: string,
    readonly stream: LogStream,
    startOffset: number,
    private readonly sink: LogSink,
    /** Called with the new resume offset after lines have been emitted. */
    private readonly onOffset: (offset: number) => void = () => undefined,
  ) {
    this.pendingStart = startOffset;
    this.readPos = startOffset;
  }

  /** The first byte not yet given to the sink. */
  get offset(): number {
    return this.pendingStart;
  }

  /** Reads what was appended since the last call and emits the complete lines. */
  poll(): Promise<void> {
    return this.serial(() => this.readNew());
  }

  /** Reads to the end and emits everything, including an unterminated last line. */
  drain(): Promise<void> {
    return this.serial(async () => {
      await this.readNew();
      if (this.pending.length > 0) {
        this.emitLine(this.pending, this.pendingStart);
        this.pendingStart += this.pending.length;
        this.pending = Buffer.alloc(0);
        this.onOffset(this.pendingStart);
      }
    });
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    const next = this.busy.then(fn, fn);
    this.busy = next.catch(() => undefined);
    return next;
  }

  private async readNew(): Promise<void> {
    let size: number;
    try {
      size = (await stat(this.path)).size;
    } catch {
      return; // not there (yet): nothing to read
    }
    if (size <= this.readPos) return;
    const fh = await open(this.path, 'r').catch(() => null);
    if (!fh) return;
    try {
      const buf = Buffer.allocUnsafe(READ_CHUNK);
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, this.readPos);
        if (bytesRead === 0) break;
        this.readPos += bytesRead;
        this.consume(buf.subarray(0, bytesRead));
      }
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  private consume(chunk: Buffer): void {
    let data = this.pending.length ? Buffer.concat([this.pending, chunk]) : Buffer.from(chunk);
    let base = this.pendingStart;
    let start = 0;
    let nl: number;
    while ((nl = data.indexOf(0x0a, start)) !== -1) {
      this.emitLine(data.subarray(start, nl), base + start);
      start = nl + 1;
    }
    data = data.subarray(start);
    base += start;
    while (data.length > MAX_LINE_BYTES) {
      const cut = cutAt(data, MAX_LINE_BYTES);
      this.emit(data.subarray(0, cut), base);
      data = data.subarray(cut);
      base += cut;
    }
    // Copy so the pending bytes do not pin (or alias) the read buffer.
    this.pending = Buffer.from(data);
    if (base !== this.pendingStart) {
      this.pendingStart = base;
      this.onOffset(base);
    }
  }

  /** One line (without its '\n'), split into pieces of at most MAX_LINE_BYTES. */
  private emitLine(bytes: Buffer, offset: number): void {
    while (bytes.length > MAX_LINE_BYTES) {
      const cut = cutAt(bytes, MAX_LINE_BYTES);
      this.emit(bytes.subarray(0, cut), offset);
      bytes = bytes.subarray(cut);
      offset += cut;
    }
    if (bytes.length > 0 && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, bytes.length - 1);
    this.emit(bytes, offset);
  }

  private emit(bytes: Buffer, offset: number): void {
    try {
      this.sink({ stream: this.stream, line: bytes.toString('utf8'), time: new Date(), offset });
    } catch {
      // A failing sink must not stop the tail (nor the attempt's bookkeeping).
    }
  }
}
