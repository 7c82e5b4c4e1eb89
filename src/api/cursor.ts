import { ApiError } from '../domain/errors.ts';

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
