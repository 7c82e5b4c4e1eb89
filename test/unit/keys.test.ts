import { describe, expect, it } from 'vitest';
import { displayPrefix, generateApiKey, hashApiKey, hashesEqual, isWellFormedKey } from '../../src/auth/keys.ts';
import { decodeCursor, encodeCursor } from '../../src/api/common/cursor.ts';
import { ApiError } from '../../src/api/common/errors.ts';

describe('API keys', () => {
  it('are sk_ followed by 32 random bytes in base64url', () => {
    const k = generateApiKey();
    expect(k).toMatch(/^sk_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(k.slice(3), 'base64url')).toHaveLength(32);
    expect(generateApiKey()).not.toBe(k);
    expect(isWellFormedKey(k)).toBe(true);
  });

  it.each(['', 'sk_', 'sk_short', 'pk_' + 'a'.repeat(43), 'sk_' + 'a'.repeat(42), 'sk_' + '!'.repeat(43)])(
    'rejects the malformed key %j',
    (k) => expect(isWellFormedKey(k)).toBe(false),
  );

  it('are stored as a SHA-256 hex digest and a short prefix that does not reveal the secret', () => {
    const k = generateApiKey();
    expect(hashApiKey(k)).toMatch(/^[0-9a-f]{64}$/);
    expect(hashApiKey(k)).toBe(hashApiKey(k));
    expect(displayPrefix(k)).toBe(k.slice(0, 12));
    expect(hashesEqual(hashApiKey(k), hashApiKey(k))).toBe(true);
    expect(hashesEqual(hashApiKey(k), hashApiKey(generateApiKey()))).toBe(false);
  });
});

describe('cursors', () => {
  it('round-trip', () => {
    expect(decodeCursor(encodeCursor(12345))).toBe(12345);
    expect(decodeCursor(undefined)).toBeUndefined();
  });
  it.each(['garbage', Buffer.from('v2:1').toString('base64url'), Buffer.from('v1:-1').toString('base64url')])(
    'refuses %j with a validation error naming cursor',
    (c) => {
      try {
        decodeCursor(c);
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(ApiError);
        expect((e as ApiError).status).toBe(400);
        expect((e as ApiError).message).toMatch(/^cursor/);
      }
    },
  );
});
