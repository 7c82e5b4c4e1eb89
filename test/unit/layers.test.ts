/**
 * The layering rules (.dependency-cruiser.cjs, docs/architecture.md) hold on
 * the tree as it is, and each rule fires on a violation planted for it: a
 * copy of machines/, actors/ and src/ in a temporary folder gets one
 * offending file per rule, and the check must name that rule for that file.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs');

interface Violation {
  from: string;
  to: string;
  rule: { name: string };
  cycle?: { name: string }[];
}

async function cruise(cwd: string): Promise<Violation[]> {
  const args = [CLI, '--config', '.dependency-cruiser.cjs', '--output-type', 'json', 'machines', 'actors', 'src'];
  // Exit code 1 means "violations found": the JSON on stdout is the answer either way.
  const { stdout } = await run(process.execPath, args, { cwd, maxBuffer: 64 << 20 }).catch(
    (err: { stdout?: string; code?: number }) => {
      if (typeof err.stdout === 'string' && err.stdout.startsWith('{')) return { stdout: err.stdout };
      throw err;
    },
  );
  return (JSON.parse(stdout) as { summary: { violations: Violation[] } }).summary.violations;
}

/** One planted file (or pair, for a cycle) per rule: path → source. */
const PLANTED: Record<string, { files: Record<string, string>; offender: string }> = {
  'pure-core': {
    offender: 'machines/planted.ts',
    files: { 'machines/planted.ts': "import { connect } from '@nats-io/transport-node';\nexport const c = connect;\n" },
  },
  'wire-is-standalone': {
    offender: 'src/wire/planted.ts',
    files: { 'src/wire/planted.ts': "export type { JobRecord } from '../../actors/coordinator/ports.ts';\n" },
  },
  'api-not-actors': {
    offender: 'src/api/planted.ts',
    files: { 'src/api/planted.ts': "export { natsNodeLink } from '../../actors/coordinator/nats-link.ts';\n" },
  },
  'domain-not-api': {
    offender: 'src/db/planted.ts',
    files: { 'src/db/planted.ts': "export { ErrorResponse } from '../api/common/schemas.ts';\n" },
  },
  'services-not-http': {
    offender: 'src/api/jobs/serialize.ts',
    files: { 'src/api/jobs/serialize.ts': "export { default as Fastify } from 'fastify';\n" },
  },
  'agent-no-database': {
    // Through another module: the rule follows what the agent loads, not only its own imports.
    offender: 'actors/agent/planted.ts',
    files: { 'actors/agent/planted.ts': "export { AuthService } from '../../src/auth/service.ts';\n" },
  },
  'agent-stays-small': {
    offender: 'src/runtimes/planted.ts',
    files: { 'src/runtimes/planted.ts': "export { default as Fastify } from 'fastify';\n" },
  },
  'postgres-adapters-at-the-root': {
    offender: 'actors/coordinator/planted.ts',
    files: { 'actors/coordinator/planted.ts': "export { CoordinatorStore } from './store.ts';\n" },
  },
  'simulator-no-database': {
    offender: 'src/sim/planted.ts',
    files: { 'src/sim/planted.ts': "export { openDatabase } from '../db/database.ts';\n" },
  },
  'no-cycles': {
    // A cycle through types only still fires.
    offender: 'src/domain/planted-a.ts',
    files: {
      'src/domain/planted-a.ts': "import type { B } from './planted-b.ts';\nexport interface A { b?: B }\n",
      'src/domain/planted-b.ts': "import type { A } from './planted-a.ts';\nexport interface B { a?: A }\n",
    },
  },
};

describe('layering rules', () => {
  let copy: string;

  beforeAll(() => {
    copy = mkdtempSync(path.join(tmpdir(), 'scalar-layers-'));
    for (const dir of ['machines', 'actors', 'src']) cpSync(path.join(ROOT, dir), path.join(copy, dir), { recursive: true });
    for (const f of ['.dependency-cruiser.cjs', 'tsconfig.json', 'package.json']) cpSync(path.join(ROOT, f), path.join(copy, f));
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'), 'dir');
    for (const { files } of Object.values(PLANTED)) {
      for (const [file, source] of Object.entries(files)) {
        mkdirSync(path.dirname(path.join(copy, file)), { recursive: true });
        writeFileSync(path.join(copy, file), source);
      }
    }
  });
  afterAll(() => rmSync(copy, { recursive: true, force: true }));

  it('the tree as committed breaks none of them', async () => {
    expect(await cruise(ROOT)).toEqual([]);
  }, 60_000);

  it('every rule fires on the violation planted for it, and nothing else fires', async () => {
    const found = await cruise(copy);
    const byRule = new Map<string, Set<string>>();
    for (const v of found) {
      const set = byRule.get(v.rule.name) ?? new Set();
      set.add(v.from);
      byRule.set(v.rule.name, set);
    }
    for (const [rule, { offender }] of Object.entries(PLANTED)) {
      expect([...(byRule.get(rule) ?? [])], `rule ${rule}`).toContain(offender);
    }
    // Every violation found comes from a planted file.
    const planted = new Set(Object.values(PLANTED).flatMap((p) => Object.keys(p.files)));
    for (const v of found) expect(planted, `${v.rule.name}: ${v.from} → ${v.to}`).toContain(v.from);
  }, 60_000);
});
