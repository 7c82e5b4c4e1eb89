import { Migration } from '@mikro-orm/migrations';

export class Migration20261129082921_init extends Migration {

  override async up(): Promise<void> {
    this.addSql(`create table "users" ("id" uuid not null, "name" text not null, "is_admin" boolean not null default false, "created_at" timestamptz not null default now(), constraint "users_pkey" primary key ("id"));`);

    this.addSql(`create table "jobs" ("id" uuid not null, "seq" bigserial, "user_id" uuid not null, "tier" varchar(8) not null, "status" varchar(16) not null, "status_reason" text null, "gpu_count" int not null, "vram_per_gpu_gb" double precision not null, "cpu_cores" double precision not null, "ram_gb" double precision not null, "expected_duration_sec" int not null, "priority" int not null default 0, "image" text not null, "command" jsonb not null, "env" jsonb not null, "attempt" int not null default 1, "max_attempts" int not null default 3, "node_id" text null, "gpu_indices" jsonb null, "exit_code" int null, "created_at" timestamptz not null, "updated_at" timestamptz not null, "queued_at" timestamptz null, "scheduled_at" timestamptz null, "started_at" timestamptz null, "completed_at" timestamptz null, "failed_at" timestamptz null, "cancelled_at" timestamptz null, "finished_at" timestamptz null, constraint "jobs_pkey" primary key ("id"));`);
    this.addSql(`alter table "jobs" add constraint "jobs_seq_unique" unique ("seq");`);
    this.addSql(`create index "jobs_user_seq_idx" on "jobs" ("user_id", "seq");`);
    this.addSql(`create index "jobs_status_seq_idx" on "jobs" ("status", "seq");`);

    this.addSql(`create table "job_events" ("id" bigserial primary key, "job_id" uuid not null, "attempt" int not null, "from_status" varchar(16) null, "to_status" varchar(16) not null, "event" varchar(32) not null, "reason" text null, "created_at" timestamptz not null);`);
    this.addSql(`create index "job_events_job_id_idx" on "job_events" ("job_id", "id");`);

    this.addSql(`create table "idempotency_keys" ("user_id" uuid not null, "key" varchar(255) not null, "request_hash" varchar(64) not null, "job_id" uuid not null, "created_at" timestamptz not null, constraint "idempotency_keys_pkey" primary key ("user_id", "key"));`);

    this.addSql(`create table "endpoints" ("id" uuid not null, "seq" bigserial, "user_id" uuid not null, "name" varchar(63) not null, "image" text not null, "gpu_count" int not null, "vram_per_gpu_gb" double precision not null, "cpu_cores" double precision not null, "ram_gb" double precision not null, "status" varchar(16) not null, "status_reason" text null, "created_at" timestamptz not null, "updated_at" timestamptz not null, "deleted_at" timestamptz null, constraint "endpoints_pkey" primary key ("id"));`);
    this.addSql(`alter table "endpoints" add constraint "endpoints_seq_unique" unique ("seq");`);

    this.addSql(`create table "api_keys" ("id" uuid not null, "user_id" uuid not null, "name" text not null, "key_hash" varchar(64) not null, "prefix" varchar(16) not null, "created_at" timestamptz not null default now(), "last_used_at" timestamptz null, "revoked_at" timestamptz null, constraint "api_keys_pkey" primary key ("id"));`);
    this.addSql(`alter table "api_keys" add constraint "api_keys_key_hash_unique" unique ("key_hash");`);
    this.addSql(`create index "api_keys_user_id_index" on "api_keys" ("user_id");`);

    this.addSql(`alter table "jobs" add constraint "jobs_user_id_foreign" foreign key ("user_id") references "users" ("id") on update cascade;`);

    this.addSql(`alter table "job_events" add constraint "job_events_job_id_foreign" foreign key ("job_id") references "jobs" ("id") on update cascade on delete cascade;`);

    this.addSql(`alter table "idempotency_keys" add constraint "idempotency_keys_user_id_foreign" foreign key ("user_id") references "users" ("id") on update cascade on delete cascade;`);
    this.addSql(`alter table "idempotency_keys" add constraint "idempotency_keys_job_id_foreign" foreign key ("job_id") references "jobs" ("id") on update cascade on delete cascade;`);

    this.addSql(`alter table "endpoints" add constraint "endpoints_user_id_foreign" foreign key ("user_id") references "users" ("id") on update cascade;`);

    this.addSql(`alter table "api_keys" add constraint "api_keys_user_id_foreign" foreign key ("user_id") references "users" ("id") on update cascade on delete cascade;`);

    // Hand-written additions the entity diff cannot express.
    // Statuses and tiers are closed sets: the database refuses anything else.
    this.addSql(`alter table "jobs" add constraint "jobs_status_check" check ("status" in ('pending','queued','scheduled','running','completed','failed','cancelled'));`);
    this.addSql(`alter table "jobs" add constraint "jobs_tier_check" check ("tier" in ('FAST','FLEX'));`);
    this.addSql(`alter table "jobs" add constraint "jobs_attempt_check" check ("attempt" >= 1);`);
    // Live jobs are what the coordinator rehydrates at start: keep them cheap to find.
    this.addSql(`create index "jobs_live_idx" on "jobs" ("status", "tier", "priority") where "status" in ('pending','queued','scheduled','running');`);
    // One live endpoint name per user; a deleted endpoint frees its name.
    this.addSql(`create unique index "endpoints_user_name_live_uniq" on "endpoints" ("user_id", "name") where "deleted_at" is null;`);
    this.addSql(`create index "endpoints_user_seq_idx" on "endpoints" ("user_id", "seq");`);
  }

}
