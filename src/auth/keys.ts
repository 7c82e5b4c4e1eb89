import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** 32 random bytes, base64url: 43 characters after the prefix. */
const KEY_BYTES = 32;
export const KEY_PREFIX = 'sk_';
const DISPLAY_PREFIX_LEN = 12; // "sk_" + 9 characters: enough to tell keys apart, useless to an attacker
const KEY_SHAPE = /^sk_[A-Za-z0-9_-]{43,200}$/;

export function generateApiKey(): string {
  return KEY_PREFIX + randomBytes(KEY_BYTES).toString('base64url');
}

export function isWellFormedKey(key: string): boolean {
  return KEY_SHAPE.test(key);
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export function displayPrefix(key: string): string {
  return key.slice(0, DISPLAY_PREFIX_LEN);
}

/** Constant-time comparison of two hex digests of equal length. */
export function hashesEqual(a: string, b: string): boolean {
  const ba = Buffer.from(a, 'hex');
  const bb = Buffer.from(b, 'hex');
  return ba.length === bb.length && timingSafeEqual(ba, bb);
}
