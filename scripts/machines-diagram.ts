/**
 * Regenerate the machine diagrams from the machines themselves.
 *
 *   npm run machines:diagram             write machines/diagrams/<name>.mmd and the README blocks
 *   npm run machines:diagram -- --check  exit 1 if either is stale (for CI)
 *
 * Each machine gets a standalone .mmd file (for tools and reviews) and a
 * ```mermaid block in machines/README.md between `<!-- diagram:<name>:start -->`
 * and `<!-- diagram:<name>:end -->` (so GitHub renders it where it is explained).
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AnyStateMachine } from 'xstate';
import { jobMachine } from '../machines/job.machine.ts';
import { coordinatorMachine } from '../machines/coordinator.machine.ts';
import { nodeMachine } from '../machines/node.machine.ts';
import { blockMachine } from '../machines/block.machine.ts';
import { replaceDiagramBlock, toMermaid } from '../machines/mermaid.ts';

// One line per machine. The README must hold the markers for each name.
const DIAGRAMS: ReadonlyArray<{ name: string; machine: AnyStateMachine }> = [
  { name: 'job', machine: jobMachine },
  { name: 'node', machine: nodeMachine },
  { name: 'coordinator', machine: coordinatorMachine },
  { name: 'block', machine: blockMachine },
];

// Resolved from this file, not the cwd, so the script works from anywhere.
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const machinesDir = join(repoRoot, 'machines');
const readmePath = join(machinesDir, 'README.md');

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

/** Every file this script owns, with the content it should have. */
function expectedFiles(): Map<string, string> {
  const files = new Map<string, string>();
  let readme = readOrEmpty(readmePath);
  for (const { name, machine } of DIAGRAMS) {
    const diagram = toMermaid(machine);
    files.set(join(machinesDir, 'diagrams', `${name}.mmd`), diagram);
    try {
      readme = replaceDiagramBlock(readme, name, diagram);
    } catch (err) {
      throw new Error(`${relative(repoRoot, readmePath)}: ${(err as Error).message}`);
    }
  }
  files.set(readmePath, readme);
  return files;
}

function main(argv: readonly string[]): number {
  const check = argv.includes('--check');
  let files: Map<string, string>;
  try {
    files = expectedFiles();
  } catch (err) {
    console.error(`machines:diagram: ${(err as Error).message}`);
    return 1;
  }

  const stale = [...files].filter(([path, content]) => readOrEmpty(path) !== content);
  if (check) {
    if (stale.length === 0) return 0;
    console.error(
      `machines:diagram: out of date: ${stale.map(([p]) => relative(repoRoot, p)).join(', ')}\n` +
        'Run `npm run machines:diagram` and commit the result.',
    );
    return 1;
  }
  for (const [path, content] of stale) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content);
    console.log(`wrote ${relative(repoRoot, path)}`);
  }
  if (stale.length === 0) console.log('machines:diagram: up to date');
  return 0;
}

process.exitCode = main(process.argv.slice(2));
