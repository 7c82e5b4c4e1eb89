/**
 * The agent process is killed with SIGKILL while its attempt runs; a new
 * one re-attaches from the record it had printed (as it would have saved).
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { ProcessRuntime, type HostExecution } from '../../../src/runtimes/process.ts';
import { groupAlive } from '../../../src/runtimes/proc.ts';
import { collector, removeTempDirs, spec, tempDir } from './helpers.ts';

afterAll(removeTempDirs);

const processTs = resolve('src/runtimes/process.ts');

/** Runs an agent that launches `command` and prints its record once the first line is in; then SIGKILLs it. */
async function launchInDoomedAgent(command: string[]): Promise<Record<string, unknown>> {
  const dir = tempDir('scalar-agent-');
  const script = join(dir, 'agent.mts');
  writeFileSync(
    script,
    `import { ProcessRuntime } from ${JSON.stringify(processTs)};
const s = ${JSON.stringify(spec({ command, workDir: join(dir, 'work') }))};
let ex: any;
let printed = false;
ex = await new ProcessRuntime().launch(s, () => {
  if (!printed) { printed = true; setTimeout(() => console.log(JSON.stringify(ex.record)), 0); }
});
setInterval(() => undefined, 1000);
`,
  );
  const agent = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const rl = createInterface({ input: agent.stdout! });
  const line = await new Promise<string>((res, rej) => {
    rl.once('line', res);
    agent.once('exit', () => rej(new Error('the agent exited before printing its record')));
  });
  agent.kill('SIGKILL');
  await new Promise((r) => agent.once('exit', r));
  return JSON.parse(line) as Record<string, unknown>;
}

describe('process runtime across an agent killed with SIGKILL', () => {
  it('the attempt runs on, and the next agent sees its remaining logs and its exit', async () => {
    const record = await launchInDoomedAgent(['sh', '-c', 'echo before; sleep 0.7; echo after; exit 6']);
    expect(record.offsets).toEqual({ stdout: 7, stderr: 0 });
    const logs = collector();
    const ex = (await new ProcessRuntime().reattach(record, logs.sink)) as HostExecution;
    expect(ex.pid).toBe(record.pid);
    expect(await ex.exited).toEqual({ code: 6, signal: null });
    expect(logs.lines.map((l) => [l.line, l.offset])).toEqual([['after', 7]]);
  });

  it('the next agent can kill it (its wrapper is nobody\u2019s child now)', async () => {
    const record = await launchInDoomedAgent(['sh', '-c', 'trap "" TERM; echo up; sleep 300']);
    const ex = (await new ProcessRuntime().reattach(record, () => undefined)) as HostExecution;
    expect('kill' in ex).toBe(true);
    const t0 = Date.now();
    await ex.kill(200);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(await ex.exited).toEqual({ code: 137, signal: 'SIGKILL' });
    expect(groupAlive(record.pgid as number)).toBe(false);
  });
});
