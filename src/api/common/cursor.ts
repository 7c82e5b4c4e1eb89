import { ApiError } from './errors.ts';

/**
 * Opaque keyset cursors. A cursor is the `seq` of the last row of a page;
 * the next page is everything strictly older. Rows inserted while a client
 * walks the pages land above the cursor, so no row is seen twice or skipped.
 */
export function encodeCursor(seq: number): string {
  return Buffer.from(`v1:${seq}`).toString('base64url');
}

export function decodeCursor(cursor: string | undefined): number | undefined {
  if (cursor === undefined) return undefined;
  const m = /^v1:(\d{1,18})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m) {
    throw new ApiError('validation_failed', 'cursor: is not a cursor this API returned', {
      fields: [{ field: 'cursor', location: 'querystring', message: 'is not a cursor this API returned' }],
    });
  }
  return Number(m[1]);
}

/**
 * One newest-first keyset page over a table with a `seq` column: fetches
 * limit + 1 rows strictly below the cursor, so whether a next page exists is
 * known without a count.
 */
export async function seqPage<T extends { seq: number }>(
  q: { limit: number; cursor?: string },
  where: Record<string, unknown>,
  find: (where: Record<string, unknown>, opts: { orderBy: { seq: 'desc' }; limit: number }) => Promise<T[]>,
): Promise<{ page: T[]; next_cursor: string | null }> {
  const before = decodeCursor(q.cursor);
  const rows = await find(before === undefined ? where : { ...where, seq: { $lt: before } }, {
    orderBy: { seq: 'desc' },
    limit: q.limit + 1,
  });
  const page = rows.slice(0, q.limit);
  const last = page[page.length - 1];
  return { page, next_cursor: rows.length > q.limit && last ? encodeCursor(last.seq) : null };
}
