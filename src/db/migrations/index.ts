import type { MigrationObject } from '@mikro-orm/core';
import { Migration20261129082921_init } from './Migration20261129082921_init.ts';
import { Migration20261129093125_execution_plane } from './Migration20261129093125_execution_plane.ts';
import { Migration20261129120000_capacity } from './Migration20261129120000_capacity.ts';
import { Migration20261208000000_failure_code } from './Migration20261208000000_failure_code.ts';

/**
 * Every committed migration, in order. Listed explicitly (rather than found
 * by globbing the folder) so migrations load the same way under tsx, vitest
 * and any bundler. `scalar migrate --create NAME` writes a new file here:
 * add it to this list (a test fails until you do).
 */
export const migrationsList: MigrationObject[] = [
  { name: 'Migration20261129082921_init', class: Migration20261129082921_init },
  { name: 'Migration20261129093125_execution_plane', class: Migration20261129093125_execution_plane },
  { name: 'Migration20261129120000_capacity', class: Migration20261129120000_capacity },
  { name: 'Migration20261208000000_failure_code', class: Migration20261208000000_failure_code },
];
