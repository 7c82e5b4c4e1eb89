import { randomUUID } from 'node:crypto';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { AuthService } from '../../auth/service.ts';
import { User } from '../../db/entities.ts';
import { ApiError } from '../common/errors.ts';
import type { CreatedUser, UserResponse } from './schemas.ts';

export function toUserResponse(u: User): UserResponse {
  return {
    id: u.id,
    name: u.name,
    is_admin: u.isAdmin,
    fair_share_weight: u.fairShareWeight,
    created_at: u.createdAt.toISOString(),
  };
}

/**
 * Users as admins manage them: creation (with the user's first API key) and
 * the fair-share weight the coordinator's queue reads from users.
 */
export class UserService {
  constructor(
    private readonly orm: MikroORM,
    private readonly auth: AuthService,
  ) {}

  async create(p: { name: string; isAdmin: boolean; fairShareWeight: number }): Promise<CreatedUser> {
    const em = this.orm.em.fork();
    const user = em.create(User, {
      id: randomUUID(),
      name: p.name,
      isAdmin: p.isAdmin,
      fairShareWeight: p.fairShareWeight,
      createdAt: new Date(),
    });
    await em.flush();
    const key = await this.auth.createKey(user.id, `${p.name} (first key)`);
    return { ...toUserResponse(user), api_key: key.api_key, api_key_id: key.id };
  }

  /** Sets a user's fair-share weight; the coordinator uses it from its next queue pass. */
  async setWeight(id: string, fairShareWeight: number): Promise<UserResponse> {
    const em = this.orm.em.fork();
    const user = await em.findOne(User, { id });
    if (!user) throw ApiError.notFound('user', id);
    user.fairShareWeight = fairShareWeight;
    await em.flush();
    return toUserResponse(user);
  }
}
