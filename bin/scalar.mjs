#!/usr/bin/env node
// The `scalar` executable. It runs the compiled build (dist/, from
// `npm run build`; `npm start` builds first) when there is one at least as
// new as the sources, and the TypeScript sources through tsx otherwise:
//   - no build: the sources, through tsx;
//   - a build older than a source (you edited src/ since): the sources, with
//     a line on stderr saying so, so an edit never silently runs old code;
//     without tsx (a production install) it refuses instead;
//   - SCALAR_FROM_SOURCE=1: the sources, always (the tests set it).
// Either way the code runs in this very process (tsx registers in-process; no
// child process), so signals such as SIGTERM reach the real server directly.
import { pathToFileURL } from 'node:url';
import { DIST_ENTRY, buildState } from './build-state.mjs';

const forced = process.env.SCALAR_FROM_SOURCE === '1';
const build = forced ? { state: 'skipped' } : buildState();

if (build.state === 'fresh') {
  await import(pathToFileURL(DIST_ENTRY).href);
} else {
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch (err) {
    if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
    const why = build.state === 'stale' ? `the build in dist/ is older than ${build.newer}` : 'there is no build in dist/';
    process.stderr.write(`scalar: ${why}, and tsx (a dev dependency) is not installed to run the sources: run npm run build\n`);
    process.exit(1);
  }
  if (build.state === 'stale') {
    process.stderr.write(`scalar: running the TypeScript sources: ${build.newer} is newer than the build in dist/ (npm run build to run compiled code)\n`);
  }
  register();
  await import('../src/cli/main.ts');
}
