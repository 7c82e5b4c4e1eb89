import { randomUUID } from 'node:crypto';
import type { MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import type { Logger } from 'pino';
import { ApiKey, User } from '../db/entities.ts';
import { DomainError } from '../domain/errors.ts';
import type { Principal } from './principal.ts';
import { displayPrefix, generateApiKey, hashApiKey, hashesEqual, isWellFormedKey } from './keys.ts';

/** Revocations are broadcast on this channel so every API process evicts the key at once. */
const REVOKE_CHANNEL = 'scalar_api_key_revoked';
const LAST_USED_FLUSH_MS = 30_000;

interface CachedKey {
  principal: Principal;
  expiresAt: number;
}

/**
 * API keys and users. Verification runs on every request, so verified keys
 * are cached in memory by hash; a revocation evicts the key in this process
 * before the revoke call returns, and in every other process through a
 * Postgres NOTIFY sent in the revoking transaction. While that LISTEN
 * connection is down, the cache is bypassed.
 */
export class AuthService {
  private readonly cache = new Map<string, CachedKey>();
  private readonly touched = new Set<string>();
  private listener: pg.Client | undefined;
  private listening = false;
  private flushTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly orm: MikroORM,
    private readonly opts: { cacheTtlSec: number },
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.flushTimer = setInterval(() => void this.flushLastUsed(), LAST_USED_FLUSH_MS);
    this.flushTimer.unref();
    if (this.opts.cacheTtlSec > 0) await this.listen();
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.orm.config.get('clientUrl') });
    const lost = (err?: unknown) => {
      if (this.listener !== client) return;
      this.listening = false;
      this.listener = undefined;
      this.cache.clear();
      client.end().catch(() => undefined);
      if (this.closed) return;
      this.log.warn({ err }, 'lost the key-revocation listener; bypassing the key cache until it is back');
      setTimeout(() => void this.listen().catch(() => undefined), 1000).unref();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    client.on('notification', (n) => {
      if (n.channel === REVOKE_CHANNEL && n.payload) this.cache.delete(n.payload);
    });
    this.listener = client;
    try {
      await client.connect();
      await client.query(`listen ${REVOKE_CHANNEL}`);
      this.listening = true;
    } catch (err) {
      lost(err);
    }
  }

  async stop(): Promise<void> {
    this.closed = true;
    clearInterval(this.flushTimer);
    await this.flushLastUsed();
    const l = this.listener;
    this.listener = undefined;
    await l?.end().catch(() => undefined);
  }

  /** The principal a raw key stands for, or null for any key that is malformed, unknown or revoked. */
  async verify(rawKey: string): Promise<Principal | null> {
    if (!isWellFormedKey(rawKey)) return null;
    const hash = hashApiKey(rawKey);
    const now = Date.now();
    const hit = this.cache.get(hash);
    if (hit && hit.expiresAt > now && this.listening) {
      this.touched.add(hit.principal.keyId);
      return hit.principal;
    }
    const rows = await this.orm.em.fork().execute<{ id: string; user_id: string; is_admin: boolean; key_hash: string }[]>(
      `select k.id, k.user_id, u.is_admin, k.key_hash
         from api_keys k join users u on u.id = k.user_id
        where k.key_hash = ? and k.revoked_at is null`,
      [hash],
    );
    const row = rows[0];
    // The lookup is by hash, so its timing says nothing about the key; the
    // constant-time compare guards against any future change to the lookup.
    if (!row || !hashesEqual(row.key_hash, hash)) {
      this.cache.delete(hash);
      return null;
    }
    const principal: Principal = { userId: row.user_id, keyId: row.id, isAdmin: row.is_admin };
    if (this.opts.cacheTtlSec > 0 && this.listening) {
      this.cache.set(hash, { principal, expiresAt: now + this.opts.cacheTtlSec * 1000 });
    }
    this.touched.add(row.id);
    return principal;
  }

  /** last_used_at is approximate by design: one batched UPDATE every 30 s, not a write per request. */
  async flushLastUsed(): Promise<void> {
    if (this.touched.size === 0) return;
    const ids = [...this.touched];
    this.touched.clear();
    try {
      await this.orm.em.fork().nativeUpdate(ApiKey, { id: { $in: ids } }, { lastUsedAt: new Date() });
    } catch (err) {
      this.log.warn({ err }, 'could not record last_used_at');
    }
  }

  async createKey(userId: string, name: string, rawKey = generateApiKey()): Promise<{ api_key: string; id: string }> {
    const em = this.orm.em.fork();
    const id = randomUUID();
    await em.insert(ApiKey, {
      id,
      user: userId,
      name,
      keyHash: hashApiKey(rawKey),
      prefix: displayPrefix(rawKey),
      createdAt: new Date(),
    });
    return { api_key: rawKey, id };
  }

  async listKeys(userId: string) {
    const keys = await this.orm.em
      .fork()
      .find(ApiKey, { user: userId, revokedAt: null }, { orderBy: { createdAt: 'desc', id: 'desc' } });
    return keys.map((k) => ({
      id: k.id,
      name: k.name,
      prefix: k.prefix,
      created_at: k.createdAt.toISOString(),
      last_used_at: k.lastUsedAt ? k.lastUsedAt.toISOString() : null,
    }));
  }

  /** Revokes one of the caller's keys (an admin may revoke anyone's). Another user's key is a 404, like an unknown one. */
  async revokeKey(principal: Principal, keyId: string): Promise<void> {
    const hash = await this.orm.em.fork().transactional(async (tx) => {
      const rows = await tx.execute<{ key_hash: string }[]>(
        `update api_keys set revoked_at = now()
          where id = ? and (user_id = ? or ?) and revoked_at is null
          returning key_hash`,
        [keyId, principal.userId, principal.isAdmin],
      );
      const h = rows[0]?.key_hash;
      if (h) await tx.execute('select pg_notify(?, ?)', [REVOKE_CHANNEL, h]);
      return h;
    });
    if (!hash) throw DomainError.notFound('api_key', keyId);
    this.cache.delete(hash);
  }

  async createUser(name: string, isAdmin: boolean) {
    const em = this.orm.em.fork();
    const user = em.create(User, { id: randomUUID(), name, isAdmin, createdAt: new Date() });
    await em.flush();
    const key = await this.createKey(user.id, `${name} (first key)`);
    return { user, key };
  }

  async userExists(userId: string): Promise<boolean> {
    return (await this.orm.em.fork().count(User, { id: userId })) > 0;
  }

  async anyAdmin(): Promise<boolean> {
    return (await this.orm.em.fork().count(User, { isAdmin: true })) > 0;
  }

  /**
   * Makes sure an admin key with exactly this value exists (SCALAR_BOOTSTRAP_KEY).
   * Idempotent, and safe when several processes start at once.
   */
  async ensureBootstrapKey(rawKey: string): Promise<void> {
    const hash = hashApiKey(rawKey);
    await this.orm.em.fork().transactional(async (tx) => {
      await tx.execute('select pg_advisory_xact_lock(?)', [0x5ca1ab]);
      const [existing] = await tx.execute<{ revoked_at: Date | null; is_admin: boolean }[]>(
        `select k.revoked_at, u.is_admin from api_keys k join users u on u.id = k.user_id where k.key_hash = ?`,
        [hash],
      );
      if (existing) {
        if (existing.revoked_at || !existing.is_admin) {
          throw new Error('SCALAR_BOOTSTRAP_KEY names a key that was revoked or belongs to a non-admin; choose another value');
        }
        return;
      }
      const userId = randomUUID();
      await tx.insert(User, { id: userId, name: 'bootstrap-admin', isAdmin: true, createdAt: new Date() });
      await tx.insert(ApiKey, {
        id: randomUUID(),
        user: userId,
        name: 'SCALAR_BOOTSTRAP_KEY',
        keyHash: hash,
        prefix: displayPrefix(rawKey),
        createdAt: new Date(),
      });
    });
  }
}
