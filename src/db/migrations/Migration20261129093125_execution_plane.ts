import { Migration } from '@mikro-orm/migrations';

/** Nodes, their GPUs, and the allocation rows that bind a job's attempt to specific GPUs. */
export class Migration20261129093125_execution_plane extends Migration {

  override async up(): Promise<void> {
    this.addSql(`create table "nodes" ("id" text not null, "pool" varchar(8) not null, "state" varchar(16) not null, "state_reason" text null, "runtime" varchar(16) not null, "cpu_cores" double precision not null, "ram_gb" double precision not null, "drain_requested" boolean not null default false, "registered_at" timestamptz not null, "last_heartbeat_at" timestamptz null, "updated_at" timestamptz not null, constraint "nodes_pkey" primary key ("id"));`);

    this.addSql(`create table "gpus" ("node_id" text not null, "index" int not null, "uuid" text not null, "model" text not null, "vram_gb" double precision not null, constraint "gpus_pkey" primary key ("node_id", "index"));`);

    this.addSql(`create table "allocations" ("id" bigserial primary key, "job_id" uuid not null, "attempt" int not null, "node_id" text not null, "gpu_index" int not null, "created_at" timestamptz not null, "released_at" timestamptz null);`);
    this.addSql(`create index "allocations_job_attempt_idx" on "allocations" ("job_id", "attempt");`);

    this.addSql(`alter table "gpus" add constraint "gpus_node_id_foreign" foreign key ("node_id") references "nodes" ("id") on update cascade on delete cascade;`);
    this.addSql(`alter table "allocations" add constraint "allocations_job_id_foreign" foreign key ("job_id") references "jobs" ("id") on update cascade on delete cascade;`);

    // Hand-written additions the entity diff cannot express.
    this.addSql(`alter table "nodes" add constraint "nodes_pool_check" check ("pool" in ('fast','flex'));`);
    this.addSql(`alter table "nodes" add constraint "nodes_state_check" check ("state" in ('registering','ready','draining','lost'));`);
    // The invariant of the whole execution plane: one GPU, at most one active holder.
    this.addSql(`create unique index "allocations_active_gpu_uniq" on "allocations" ("node_id", "gpu_index") where "released_at" is null;`);
    // GET /nodes joins the active rows per node; history queries go by job.
    this.addSql(`create index "allocations_active_node_idx" on "allocations" ("node_id") where "released_at" is null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "allocations" cascade;`);
    this.addSql(`drop table if exists "gpus" cascade;`);
    this.addSql(`drop table if exists "nodes" cascade;`);
  }

}
