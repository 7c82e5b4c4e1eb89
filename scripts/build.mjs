// `npm run build`: compiles src/, actors/ and machines/ to dist/ with tsc
// (tsconfig.build.json), then stamps the build with the time it started, so
// that a source saved during the compile still counts as newer than the build.
//   node scripts/build.mjs             always runs tsc (incremental: unchanged files are not re-emitted)
//   node scripts/build.mjs --if-stale  does nothing when dist/ is newer than every source (`npm start`)
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, utimesSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { ROOT, STAMP, buildState } from '../bin/build-state.mjs';

if (process.argv.includes('--if-stale') && buildState().state === 'fresh') process.exit(0);

const started = new Date();
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const r = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
closeSync(openSync(STAMP, 'w'));
utimesSync(STAMP, started, started);
process.stdout.write(`built dist/ (${((Date.now() - started.getTime()) / 1000).toFixed(1)} s)\n`);
