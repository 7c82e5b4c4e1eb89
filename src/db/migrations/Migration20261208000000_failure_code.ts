import { Migration } from '@mikro-orm/migrations';

/**
 * One failure vocabulary: the code (machines/job.failure.ts) beside each
 * plain-words reason, on the job and on each of its transitions. Nullable and
 * without a default, so existing rows read as "no code" and the migration is
 * a catalogue-only change (no table rewrite). No check constraint on the
 * values: the codes are a TypeScript union that the writers are typed on,
 * and a new code should not need a migration.
 */
export class Migration20261208000000_failure_code extends Migration {

  override async up(): Promise<void> {
    this.addSql(`alter table "jobs" add column "failure_code" varchar(32) null;`);
    this.addSql(`alter table "job_events" add column "failure_code" varchar(32) null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "job_events" drop column "failure_code";`);
    this.addSql(`alter table "jobs" drop column "failure_code";`);
  }

}
