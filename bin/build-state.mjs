// Is dist/ (what `npm run build` emits) there, and is it at least as new as
// the TypeScript it was built from? Shared by bin/scalar.mjs, which must not
// run a build older than the sources, and scripts/build.mjs, which skips tsc
// when nothing changed (`npm start` builds first). Plain JavaScript: it runs
// before anything is compiled.
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const DIST_ENTRY = path.join(ROOT, 'dist/src/cli/main.js');
/** Written by scripts/build.mjs after tsc succeeds: its mtime is when the build last matched the sources. */
export const STAMP = path.join(ROOT, 'dist/.built');
/**
 * What the build is made of: the .ts files of the compiled folders
 * (tsconfig.build.json) and the compiler settings. Other files there do not
 * count: applying migrations rewrites src/db/migrations/.snapshot-scalar.json,
 * which is not compiled, and must not make the build look old.
 */
const SOURCE_DIRS = ['src', 'actors', 'machines'];
const SETTINGS = ['tsconfig.json', 'tsconfig.build.json'];

function mtime(p) {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return undefined;
  }
}

/** The newest input, or undefined when there are none (the Docker image has no sources). */
function newestInput() {
  let newest;
  const consider = (p) => {
    const t = mtime(p);
    if (t !== undefined && (!newest || t > newest.mtimeMs)) newest = { path: p, mtimeMs: t };
  };
  const visit = (dir) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) visit(p);
      else if (e.name.endsWith('.ts')) consider(p);
    }
  };
  for (const d of SOURCE_DIRS) visit(path.join(ROOT, d));
  for (const f of SETTINGS) consider(path.join(ROOT, f));
  return newest;
}

/**
 * 'absent': no build. 'fresh': built, and no input changed since (also when
 * the sources are not there at all, as in the Docker image). 'stale': an
 * input is newer than the build; `newer` names it, relative to the root.
 */
export function buildState() {
  const built = mtime(STAMP);
  if (built === undefined || mtime(DIST_ENTRY) === undefined) return { state: 'absent' };
  const newest = newestInput();
  if (newest && newest.mtimeMs > built) return { state: 'stale', newer: path.relative(ROOT, newest.path) };
  return { state: 'fresh' };
}
