import { Migration } from '@mikro-orm/migrations';

/**
 * Tier-aware placement and capacity: gangs, preemption, placement diagnosis,
 * fair-share weights, capacity blocks, autoscaler events and usage records.
 */
export class Migration20261129120000_capacity extends Migration {

  override async up(): Promise<void> {
    // Jobs: gangs, the placement of every member, the latest diagnosis, preemption.
    this.addSql(`alter table "jobs" add column "node_count" int not null default 1, add column "placements" jsonb null, add column "placement" jsonb null, add column "preempted_by" uuid null, add column "preemptions" int not null default 0, add column "member_failure" jsonb null;`);
    this.addSql(`alter table "users" add column "fair_share_weight" double precision not null default 1;`);
    this.addSql(`alter table "users" add constraint "users_fair_share_weight_check" check ("fair_share_weight" > 0);`);
    this.addSql(`alter table "nodes" add column "block_id" text null, add column "addr" text null;`);

    this.addSql(`create table "capacity_blocks" ("id" text not null, "provider" text not null, "external_id" text null, "instance_type" text not null, "tier" varchar(8) not null, "pool" varchar(8) not null, "nodes" int not null, "gpus_per_node" int not null, "vram_per_gpu_gb" double precision not null, "cpu_per_node" double precision not null, "ram_per_node_gb" double precision not null, "starts_at" timestamptz not null, "ends_at" timestamptz null, "cost_per_hour" double precision not null, "status" varchar(16) not null, "status_reason" text null, "created_by" text not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, "released_at" timestamptz null, constraint "capacity_blocks_pkey" primary key ("id"));`);
    this.addSql(`alter table "capacity_blocks" add constraint "capacity_blocks_status_check" check ("status" in ('pending','active','draining','released'));`);
    this.addSql(`alter table "capacity_blocks" add constraint "capacity_blocks_tier_check" check ("tier" in ('fast','flex'));`);
    this.addSql(`create index "capacity_blocks_status_idx" on "capacity_blocks" ("status");`);

    this.addSql(`create table "capacity_events" ("id" bigserial primary key, "created_at" timestamptz not null, "action" text not null, "tier" varchar(8) null, "block_id" text null, "reason" text not null, "inputs" jsonb not null default '{}');`);
    this.addSql(`create index "capacity_events_created_idx" on "capacity_events" ("created_at", "id");`);

    // One row per (attempt, node) whose GPUs were released: what that attempt used and cost.
    this.addSql(`create table "usage_records" ("id" bigserial primary key, "job_id" uuid not null, "attempt" int not null, "node_id" text not null, "user_id" uuid not null, "tier" varchar(8) not null, "gpu_count" int not null, "gpu_seconds" double precision not null, "cost_usd" double precision not null, "started_at" timestamptz not null, "ended_at" timestamptz not null);`);
    this.addSql(`alter table "usage_records" add constraint "usage_records_job_id_foreign" foreign key ("job_id") references "jobs" ("id") on update cascade on delete cascade;`);
    this.addSql(`create index "usage_records_user_ended_idx" on "usage_records" ("user_id", "ended_at");`);
    this.addSql(`create index "usage_records_ended_idx" on "usage_records" ("ended_at");`);
    this.addSql(`create index "usage_records_job_idx" on "usage_records" ("job_id");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "usage_records" cascade;`);
    this.addSql(`drop table if exists "capacity_events" cascade;`);
    this.addSql(`drop table if exists "capacity_blocks" cascade;`);
    this.addSql(`alter table "nodes" drop column "block_id", drop column "addr";`);
    this.addSql(`alter table "users" drop constraint "users_fair_share_weight_check", drop column "fair_share_weight";`);
    this.addSql(`alter table "jobs" drop column "node_count", drop column "placements", drop column "placement", drop column "preempted_by", drop column "preemptions", drop column "member_failure";`);
  }

}
