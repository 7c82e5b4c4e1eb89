/**
 * The node agent against the real NATS server (127.0.0.1:4222 or NATS_URL).
 * The test plays the coordinator: it publishes commands to the node's cmd
 * subject and reads the node's events from the NODE_EVENTS stream.
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AckPolicy, DeliverPolicy, type ConsumerMessages } from '@nats-io/jetstream';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Agent, type AgentOptions } from '../../actors/agent/agent.ts';
import { readDoneLog, readSeenRuns, readStateFile } from '../../actors/agent/state.ts';
import { connectBus, type Bus } from '../../src/wire/connection.ts';
import {
  encodeJson,
  heartbeatSchema,
  logLineSchema,
  nodeEventSchema,
  type Heartbeat,
  type KillCommand,
  type LogLineMessage,
  type NodeBusEvent,
  type RunCommand,
} from '../../src/wire/messages.ts';
import { createRuntime, parseGpuSpec, type Runtime } from '../../src/runtimes/index.ts';
import { groupAlive, pidAlive } from '../../src/runtimes/proc.ts';
import { CommandSigner, generateSeed } from '../../src/wire/signing.ts';
import type { RefusalReason } from '../../actors/agent/refusals.ts';
import { aRunCommand, publishCommand, TEST_COMMAND_TTL_MS, testSigner, testVerifier } from '../helpers/signing.ts';

const prefix = `test_agent_${randomBytes(4).toString('hex')}`;
const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
let bus: Bus;
let tmp: string;
const agents: Agent[] = [];
const readers: EventReader[] = [];

beforeAll(async () => {
  bus = await connectBus(
    { url: process.env.NATS_URL ?? 'nats://127.0.0.1:4222', name: 'agent-test', prefix, logRetentionHours: 1, logMaxMb: 64, role: 'coordinator' },
    log,
  );
  tmp = await mkdtemp(join(tmpdir(), 'scalar-agent-test-'));
});

afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop()));
});

afterAll(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop()));
  await Promise.all(readers.splice(0).map((r) => r.close()));
  if (bus) {
    for (const s of Object.values(bus.t.streams)) await bus.jsm.streams.delete(s).catch(() => undefined);
    await bus.close();
  }
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A reported attempt leaves the state file with the next (coalesced) save, within about half a second. */
async function stateFileEmpties(dir: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await readStateFile(dir))!.executions.length === 0) return;
    await sleep(20);
  }
  expect((await readStateFile(dir))!.executions).toEqual([]);
}

async function waitUntil<T>(fn: () => T | undefined | null | false, what: string, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Reads (and acks) one node's events from NODE_EVENTS, as the coordinator would. */
class EventReader {
  readonly events: NodeBusEvent[] = [];
  private msgs: ConsumerMessages | null = null;

  static async open(nodeId: string): Promise<EventReader> {
    const r = new EventReader();
    const name = `test-events-${nodeId}`;
    await bus.jsm.consumers.add(bus.t.streams.NODE_EVENTS, {
      durable_name: name,
      filter_subject: bus.t.subjects.nodeEvents(nodeId),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
    });
    const c = await bus.js.consumers.get(bus.t.streams.NODE_EVENTS, name);
    r.msgs = await c.consume({ max_messages: 100, expires: 2000 });
    void (async () => {
      for await (const m of r.msgs!) {
        r.events.push(nodeEventSchema.parse(m.json()));
        m.ack();
      }
    })();
    readers.push(r);
    return r;
  }

  of(type: NodeBusEvent['type'], jobId?: string): NodeBusEvent[] {
    return this.events.filter((e) => e.type === type && (jobId === undefined || ('job_id' in e && e.job_id === jobId)));
  }

  async next<T extends NodeBusEvent['type']>(type: T, jobId?: string, nth = 1, timeoutMs = 8000): Promise<Extract<NodeBusEvent, { type: T }>> {
    return waitUntil(() => this.of(type, jobId)[nth - 1], `${type} #${nth}${jobId ? ` of ${jobId}` : ''}`, timeoutMs) as Promise<
      Extract<NodeBusEvent, { type: T }>
    >;
  }

  async close(): Promise<void> {
    await this.msgs?.close();
  }
}

function nodeId(): string {
  return `n-${randomBytes(4).toString('hex')}`;
}

function agentOptions(id: string, opts: Partial<AgentOptions> = {}): AgentOptions {
  return {
    nodeId: id,
    pool: 'fast',
    gpus: parseGpuSpec('2x80'),
    cpuCores: 16,
    ramGb: 64,
    runtime: opts.runtime ?? createRuntime('simulated'),
    stateDir: opts.stateDir ?? join(tmp, id),
    heartbeatIntervalMs: 200,
    bus,
    verifier: testVerifier,
    log,
    stopLogFlushMs: 1000,
    ...opts,
  };
}

function makeAgent(id: string, opts: Partial<AgentOptions> = {}): Agent {
  const a = new Agent(agentOptions(id, opts));
  agents.push(a);
  return a;
}

const runCmd = aRunCommand;

/** Publishes a command signed with the test key, as the coordinator would (helpers/signing.ts). */
const send = (id: string, cmd: RunCommand | KillCommand | Record<string, unknown>): Promise<void> => publishCommand(bus, id, cmd);

const kill = (jobId: string, attempt = 1, grace = 5): KillCommand => ({ type: 'kill', job_id: jobId, attempt, grace_sec: grace, reason: 'test' });

/** Every line stored in LOGS for a job, in stream order. */
async function readLogs(jobId: string): Promise<LogLineMessage[]> {
  const c = await bus.js.consumers.get(bus.t.streams.LOGS, { filter_subjects: bus.t.subjects.jobLogs(jobId) });
  const info = await c.info();
  const total = info.num_pending;
  const out: LogLineMessage[] = [];
  if (total === 0) return out;
  const msgs = await c.fetch({ max_messages: total, expires: 2000 });
  for await (const m of msgs) {
    out.push(logLineSchema.parse(m.json()));
    if (out.length === total) break;
  }
  return out;
}

describe('agent', () => {
  it('registers with its resources, a fresh boot id and nothing running', async () => {
    const id = nodeId();
    const events = await EventReader.open(id);
    const agent = makeAgent(id);
    await agent.start();
    const reg = await events.next('registered');
    expect(reg).toMatchObject({
      node_id: id,
      boot_id: agent.bootId,
      pool: 'fast',
      runtime: 'simulated',
      cpu_cores: 16,
      ram_gb: 64,
      running: [],
    });
    expect(reg.boot_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(reg.gpus).toEqual([
      { index: 0, uuid: 'GPU-sim-0', model: 'Simulated 80GB', vram_gb: 80 },
      { index: 1, uuid: 'GPU-sim-1', model: 'Simulated 80GB', vram_gb: 80 },
    ]);
    // The command consumer is durable, explicit-ack and filtered to this node only.
    const ci = await bus.jsm.consumers.info(bus.t.streams.NODE_CMDS, bus.t.consumers.node(id));
    expect(ci.config).toMatchObject({ filter_subject: bus.t.subjects.nodeCmd(id), ack_policy: AckPolicy.Explicit, ack_wait: 30e9 });
  });

  it('runs a process: started, both log lines stored, then exited with its code', async () => {
    const id = nodeId();
    const events = await EventReader.open(id);
    await makeAgent(id, { runtime: createRuntime('process') }).start();
    const cmd = runCmd({ command: ['sh', '-c', 'echo hello; echo oops >&2; exit 3'] });
    await send(id, cmd);
    const started = await events.next('started', cmd.job_id);
    expect(started.pid).toEqual(expect.any(Number));
    const exited = await events.next('exited', cmd.job_id);
    expect(exited).toMatchObject({ node_id: id, job_id: cmd.job_id, attempt: 1, code: 3, signal: null, killed: false });
    expect(events.events.indexOf(started)).toBeLessThan(events.events.indexOf(exited));
    // exited is published only once the lines are stored: no waiting needed here.
    const lines = await readLogs(cmd.job_id);
    expect(lines.map(({ stream, line, offset, attempt }) => ({ stream, line, offset, attempt })).sort((a, b) => a.stream.localeCompare(b.stream))).toEqual([
      { stream: 'stderr', line: 'oops', offset: 0, attempt: 1 },
      { stream: 'stdout', line: 'hello', offset: 0, attempt: 1 },
    ]);
  });

  it('ships a burst of lines through a small window; exited comes after the last one is stored', async () => {
    const id = nodeId();
    const events = await EventReader.open(id);
    const agent = new Agent({ ...agentOptions(id), runtime: createRuntime('process'), logWindow: 8 });
    agents.push(agent);
    await agent.start();
    const cmd = runCmd({ command: ['seq', '1', '3000'] });
    await send(id, cmd);
    expect(await events.next('exited', cmd.job_id)).toMatchObject({ code: 0 });
    const lines = await readLogs(cmd.job_id);
    expect(lines).toHaveLength(3000);
    expect(new Set(lines.map((l) => l.line)).size).toBe(3000);
    expect(lines.find((l) => l.line === '10')).toMatchObject({ stream: 'stdout', offset: 18 });
  });

  it('does not start a second process for a duplicate run', async () => {
    const id = nodeId();
    const events = await EventReader.open(id);
    await makeAgent(id, { runtime: createRuntime('process') }).start();
    const mark = join(tmp, `${id}.mark`);
    const cmd = runCmd({ command: ['sh', '-c', 'echo ran >> "$MARK"; sleep 0.5'], env: { MARK: mark } });
    await send(id, cmd);
    await send(id, cmd);
    await events.next('started', cmd.job_id, 2);
    await events.next('exited', cmd.job_id);
    await send(id, cmd); // re-sent after it ended: answered with its exit
    await events.next('exited', cmd.job_id, 2);
    const pids = new Set(events.of('started', cmd.job_id).map((e) => (e as { pid: number }).pid));
    expect(pids.size).toBe(1);
    expect(events.of('started', cmd.job_id)).toHaveLength(2);
    expect((await readFile(mark, 'utf8')).trim().split('\n')).toEqual(['ran']);
  });

  it('a restarted agent recognises an attempt it already ran and reported (from its done log)', async () => {
    const id = nodeId();
    const events = await EventReader.open(id);
    const first = makeAgent(id, { runtime: createRuntime('process') });
    await first.start();
    const mark = join(tmp, `${id}.mark`);
    const cmd = runCmd({ command: ['sh', '-c', 'echo ran >> "$MARK"'], env: { MARK: mark } });
    await send(id, cmd);
    await events.next('exited', cmd.job_id);
    for (let i = 0; i < 100 && (await readDoneLog(first.stateDir)).length === 0; i++) await sleep(20);
    await first.stop();

    await makeAgent(id, { runtime: createRuntime('process'), stateDir: first.stateDir }).start();
    await send(id, cmd); // a redelivery after the restart
    expect(await events.next('exited', cmd.job_id, 2)).toMatchObject({ code: 0 });
    expect((await readFile(mark, 'utf8')).trim().split('\n')).toEqual(['ran']);
  });

  it('kills a running process: exited killed:true and the process group is gone', async () => {
    const id = nodeId();
    const events = await EventReader.open(id);
    await makeAgent(id, { runtime: createRuntime('process') }).start();
    const cmd = runCmd({ command: ['sleep', '300'] });
    await send(id, cmd);
    const { pid } = await events.next('started', cmd.job_id);
    expect(pidAlive(pid!)).toBe(true);
    await send(id, kill(cmd.job_id));
    const exited = await events.next('exited', cmd.job_id);
    expect(exited).toMatchObject({ killed: true, code: 143, signal: 'SIGTERM' });
    expect(pidAlive(pid!)).toBe(false);
    expect(groupAlive(pid!)).toBe(false);
  });

  it('a kill before the run leaves a tombstone: the later run never starts', async () => {
    const id = nodeId();
    const events = await EventReader.open(id);
    const agent = makeAgent(id);
    await agent.start();
    const cmd = runCmd();
    await send(id, kill(cmd.job_id));
    expect(await events.next('exited', cmd.job_id)).toMatchObject({ code: -1, signal: null, killed: true });
    await send(id, cmd);
    expect(await events.next('exited', cmd.job_id, 2)).toMatchObject({ code: -1, killed: true });
    await sleep(300);
    expect(events.of('started', cmd.job_id)).toEqual([]);
    // Reported: out of the state file, into the done log (which a restarted agent reads to recognise the attempt).
    await stateFileEmpties(agent.stateDir);
    expect(await readDoneLog(agent.stateDir)).toEqual([
      expect.objectContaining({ job_id: cmd.job_id, tombstone: true, status: 'exited', reported: true }),
    ]);
  });

  it('reports launch_failed for a GPU index the node does not have', async () => {
    const id = nodeId();
    const events = await EventReader.open(id);
    await makeAgent(id).start();
    const cmd = runCmd({ gpu_indices: [0, 5] });
    await send(id, cmd);
    const failed = await events.next('launch_failed', cmd.job_id);
    expect(failed.reason).toMatch(/GPU index 5 does not exist on node/);
    expect(events.of('started', cmd.job_id)).toEqual([]);
  });

  it('refuses to start as a node id another live agent already runs as', async () => {
    const id = nodeId();
    const first = makeAgent(id);
    await first.start();
    const second = makeAgent(id, { stateDir: join(tmp, `${id}-second`) });
    await expect(second.start()).rejects.toThrow(/another agent is already running as node .* give this one its own --node-id/);
    await first.stop();
    // Once the first is gone, the id is free again.
    await makeAgent(id, { stateDir: join(tmp, `${id}-third`) }).start();
  });

  it('with the docker runtime and no Docker engine, a run ends in launch_failed with a clear reason', async () => {
    const id = nodeId();
    const events = await EventReader.open(id);
    // This machine has the docker CLI but no engine; elsewhere the CLI may be missing: both are launch failures.
    await makeAgent(id, { runtime: createRuntime('docker') }).start();
    const cmd = runCmd({ image: 'nvidia/cuda:12.4.0-base-ubuntu22.04', command: ['nvidia-smi', '-L'] });
    await send(id, cmd);
    const failed = await events.next('launch_failed', cmd.job_id);
    expect(failed.reason).toMatch(/^docker runtime: .*(not installed|not reachable|engine)/i);
    expect(events.of('started', cmd.job_id)).toEqual([]);
  });

  it('heartbeats its running attempts and free/used resources', async () => {
    const id = nodeId();
    const beats: Heartbeat[] = [];
    const sub = bus.nc.subscribe(bus.t.subjects.nodeHeartbeat(id), {
      callback: (_e, m) => {
        beats.push(heartbeatSchema.parse(m.json()));
      },
    });
    try {
      const events = await EventReader.open(id);
      const agent = makeAgent(id);
      await agent.start();
      const first = await waitUntil(() => beats[0], 'a heartbeat');
      expect(first).toMatchObject({ node_id: id, boot_id: agent.bootId, running: [], used: { gpus: 0, cpu_cores: 0, ram_gb: 0 }, free: { gpus: 2, cpu_cores: 16, ram_gb: 64 } });
      const cmd = runCmd({ gpu_indices: [0, 1], cpu_cores: 4, ram_gb: 8, expected_duration_sec: 60 });
      await send(id, cmd);
      await events.next('started', cmd.job_id);
      const busy = await waitUntil(() => beats.find((b) => b.running.length === 1), 'a heartbeat with the attempt');
      expect(busy).toMatchObject({
        running: [{ job_id: cmd.job_id, attempt: 1 }],
        used: { gpus: 2, cpu_cores: 4, ram_gb: 8 },
        free: { gpus: 0, cpu_cores: 12, ram_gb: 56 },
      });
      await send(id, kill(cmd.job_id));
      expect(await events.next('exited', cmd.job_id)).toMatchObject({ killed: true, code: 143 });
    } finally {
      sub.unsubscribe();
    }
  });

  it('registers again on hello, with the same boot id; a malformed command is dropped', async () => {
    const id = nodeId();
    const events = await EventReader.open(id);
    const agent = makeAgent(id);
    await agent.start();
    await events.next('registered');
    bus.nc.publish(bus.t.subjects.nodeHello(id));
    const again = await events.next('registered', undefined, 2);
    expect(again.boot_id).toBe(agent.bootId);

    await send(id, { type: 'run', job_id: 'not-a-uuid' });
    const cmd = runCmd({ expected_duration_sec: 0 });
    await send(id, cmd);
    expect(await events.next('exited', cmd.job_id)).toMatchObject({ code: 0, killed: false });
    // Both are gone from the work queue: the malformed one too (acked, never redelivered).
    let left = -1;
    for (let i = 0; i < 50 && left !== 0; i++) {
      left = (await bus.jsm.streams.info(bus.t.streams.NODE_CMDS)).state.messages;
      if (left) await sleep(20);
    }
    expect(left).toBe(0);
  });

  it('re-attaches after a restart: re-registers with the attempt running, then reports its exit', async () => {
    const id = nodeId();
    const events = await EventReader.open(id);
    const stateDir = join(tmp, id);
    const a = makeAgent(id, { runtime: createRuntime('process'), stateDir });
    await a.start();
    const cmd = runCmd({ command: ['sh', '-c', 'echo before; sleep 1.2; echo after; exit 7'] });
    await send(id, cmd);
    await events.next('started', cmd.job_id);
    await a.stop();
    const state = await readStateFile(stateDir);
    expect(state!.executions[0]).toMatchObject({ job_id: cmd.job_id, status: 'running', reported: false });

    const b = makeAgent(id, { runtime: createRuntime('process'), stateDir });
    await b.start();
    const reg = await events.next('registered', undefined, 2);
    expect(reg.boot_id).toBe(b.bootId);
    expect(reg.boot_id).not.toBe(a.bootId);
    expect(reg.running).toEqual([{ job_id: cmd.job_id, attempt: 1 }]);
    expect(await events.next('exited', cmd.job_id)).toMatchObject({ code: 7, killed: false });
    const lines = await readLogs(cmd.job_id);
    expect(lines.map((l) => l.line)).toEqual(['before', 'after']);
  });

  it('after a restart, takes commands at once and reports an interrupted launch as launch_failed', async () => {
    const id = nodeId();
    const events = await EventReader.open(id);
    const stateDir = join(tmp, id);
    const a = makeAgent(id, { stateDir });
    await a.start();
    await sleep(200); // its pull request is registered with the server
    await a.stop();
    // As if the agent had crashed between persisting `launching` and launching.
    const state = (await readStateFile(stateDir))!;
    const interrupted = runCmd();
    const workDir = join(stateDir, 'jobs', `${interrupted.job_id}-1`);
    state.executions.push({
      job_id: interrupted.job_id,
      attempt: 1,
      status: 'launching',
      reported: false,
      gpu_indices: [0],
      cpu_cores: 1,
      ram_gb: 1,
      work_dir: workDir,
      created_at: new Date().toISOString(),
    });
    await writeFile(join(stateDir, 'state.json'), JSON.stringify(state));
    // The launch had in fact started: a wrapper with the work dir as its argument, in its own group.
    const orphan = spawn('sh', ['-c', 'sleep 300; :', workDir], { detached: true, stdio: 'ignore' });
    orphan.unref();
    await waitUntil(() => groupAlive(orphan.pid!), 'the orphan to run');

    const b = makeAgent(id, { stateDir });
    await b.start();
    expect(await events.next('launch_failed', interrupted.job_id)).toMatchObject({ reason: 'agent restarted while launching' });
    // Nothing of the interrupted launch is left running.
    await waitUntil(() => !groupAlive(orphan.pid!), 'the orphan to be killed', 3000);
    // A stale pull request of the stopped agent must not swallow the next command.
    const t0 = Date.now();
    const cmd = runCmd({ expected_duration_sec: 0 });
    await send(id, cmd);
    await events.next('exited', cmd.job_id, 1, 4000);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  /** A process agent on a fresh node runs `command`; once it started, the agent stops (the process runs on). */
  async function startedThenAgentStopped(command: string[]) {
    const id = nodeId();
    const events = await EventReader.open(id);
    const stateDir = join(tmp, id);
    const a = makeAgent(id, { runtime: createRuntime('process'), stateDir });
    await a.start();
    const cmd = runCmd({ command });
    await send(id, cmd);
    const { pid } = await events.next('started', cmd.job_id);
    await a.stop();
    return { id, events, stateDir, cmd, pid };
  }

  it('after a reboot of the host, re-attaches nothing and reports each running attempt launch_failed (node_rebooted)', async () => {
    const { id, events, stateDir, cmd, pid } = await startedThenAgentStopped(['sh', '-c', 'exec sleep 60']);
    // The reboot: the job's process is gone with the host, and the state file was written in the boot before.
    process.kill(-pid!, 'SIGKILL');
    await waitUntil(() => !pidAlive(pid!), 'the process to end');
    const file = join(stateDir, 'state.json');
    const state = JSON.parse(await readFile(file, 'utf8'));
    expect(state.host_boot_id).toMatch(/^[0-9a-f-]{36}$/);
    await writeFile(file, JSON.stringify({ ...state, host_boot_id: '00000000-0000-4000-8000-000000000000' }));

    const b = makeAgent(id, { runtime: createRuntime('process'), stateDir });
    await b.start();
    expect((await events.next('registered', undefined, 2)).running).toEqual([]);
    expect(await events.next('launch_failed', cmd.job_id)).toMatchObject({ attempt: 1, code: 'node_rebooted', reason: expect.stringMatching(/^node rebooted/) });
    expect(events.of('exited', cmd.job_id)).toEqual([]);
  });

  it('reports an attempt that finished while no agent ran', async () => {
    const { id, events, stateDir, cmd, pid } = await startedThenAgentStopped(['sh', '-c', 'sleep 0.4; echo bye; exit 5']);
    await waitUntil(() => !pidAlive(pid!), 'the process to end');
    expect(events.of('exited', cmd.job_id)).toEqual([]);

    const b = makeAgent(id, { runtime: createRuntime('process'), stateDir });
    await b.start();
    const reg = await events.next('registered', undefined, 2);
    expect(reg.running).toEqual([]);
    expect(await events.next('exited', cmd.job_id)).toMatchObject({ code: 5, killed: false });
    expect((await readLogs(cmd.job_id)).map((l) => l.line)).toEqual(['bye']);
    // Reported and persisted: a third agent does not report it again.
    for (let i = 0; i < 100 && (await readDoneLog(stateDir)).length === 0; i++) await sleep(20);
    expect((await readDoneLog(stateDir))[0]).toMatchObject({ status: 'exited', reported: true, exit: { code: 5, signal: null, killed: false } });
    await stateFileEmpties(stateDir);
  });
});

/**
 * Signed commands (src/wire/signing.ts): the agent's own check. These tests
 * publish straight onto the node's command subject of the open test NATS
 * server (no authentication, any client may publish anywhere). That is what
 * they need: the check must hold even when NATS permissions are wrong or
 * missing, so each refused command is one NATS let through. A refused run
 * must launch nothing, so each one's command would create a marker file.
 */
describe('agent: signed commands', () => {
  const stranger = CommandSigner.fromSeed(generateSeed(), TEST_COMMAND_TTL_MS);

  /** A run that appends a line to its own marker file. */
  function markerRun(tag: string): { cmd: RunCommand; mark: string } {
    const mark = join(tmp, `${tag}-${randomBytes(3).toString('hex')}.mark`);
    return { cmd: runCmd({ command: ['sh', '-c', 'echo ran >> "$MARK"'], env: { MARK: mark } }), mark };
  }
  const linesOf = (mark: string) => readFile(mark, 'utf8').then((t) => t.trim().split('\n'), () => []);
  const refused = (a: Agent, reason: RefusalReason, n: number) => waitUntil(() => a.rejectedCommands[reason] >= n, `${n} refused as ${reason}`);

  async function processAgent(id: string, opts: Partial<AgentOptions> = {}): Promise<Agent> {
    const a = makeAgent(id, { runtime: createRuntime('process'), ...opts });
    await a.start();
    return a;
  }

  it('refuses an unsigned run, one signed by another key, one whose signature does not match, and one for another node: nothing runs', async () => {
    const id = nodeId();
    const events = await EventReader.open(id);
    const agent = await processAgent(id);

    const unsigned = markerRun('unsigned');
    await publishCommand(bus, id, unsigned.cmd, { signer: null });
    await refused(agent, 'unsigned', 1);

    const foreign = markerRun('foreign');
    await publishCommand(bus, id, foreign.cmd, { signer: stranger });
    await refused(agent, 'unknown_key', 1);

    // Signed for a harmless command, sent with another body: the signature binds the bytes.
    const tampered = markerRun('tampered');
    const body = encodeJson(tampered.cmd);
    const harmless = { ...tampered.cmd, command: ['true'] };
    const h = testSigner.sign(id, harmless, encodeJson(harmless), Date.now());
    await bus.js.publish(bus.t.subjects.nodeCmd(id), body, { headers: h });
    await refused(agent, 'bad_signature', 1);

    const elsewhere = markerRun('elsewhere');
    await publishCommand(bus, id, elsewhere.cmd, { signFor: 'some-other-node' });
    await refused(agent, 'wrong_node', 1);

    // A signed kill of a stranger is refused too.
    await publishCommand(bus, id, kill(unsigned.cmd.job_id), { signer: stranger });
    await refused(agent, 'unknown_key', 2);

    // The positive control: the same kind of run, signed, does run (and the commands above were handled before it).
    const good = markerRun('good');
    await publishCommand(bus, id, good.cmd);
    expect(await events.next('exited', good.cmd.job_id)).toMatchObject({ code: 0 });
    expect(await linesOf(good.mark)).toEqual(['ran']);

    for (const m of [unsigned, foreign, tampered, elsewhere]) expect(await linesOf(m.mark)).toEqual([]);
    for (const m of [unsigned, foreign, tampered, elsewhere]) expect(events.events.filter((e) => 'job_id' in e && e.job_id === m.cmd.job_id)).toEqual([]);
    expect(agent.rejectedCommands).toMatchObject({ unsigned: 1, unknown_key: 2, bad_signature: 1, wrong_node: 1, expired: 0, replayed: 0 });
    expect(agent.runningAttempts()).toEqual([]);
  });

  it('an expired run launches nothing and is answered launch_failed (command_expired); an expired kill is refused', async () => {
    const id = nodeId();
    const events = await EventReader.open(id);
    const agent = await processAgent(id);
    const late = markerRun('expired');
    // Signed a TTL and a second ago: as if its agent had been down longer than SCALAR_COMMAND_TTL_SEC.
    await publishCommand(bus, id, late.cmd, { nowMs: Date.now() - TEST_COMMAND_TTL_MS - 1000 });
    const lf = await events.next('launch_failed', late.cmd.job_id);
    expect(lf).toMatchObject({ code: 'command_expired', attempt: 1 });
    expect((lf as { reason: string }).reason).toMatch(/expired before node .* took it .*SCALAR_COMMAND_TTL_SEC.*NTP/);
    expect(agent.rejectedCommands.expired).toBe(1);

    // The coordinator's re-send of that attempt (signed afresh) gets the same answer: it never launches.
    await publishCommand(bus, id, late.cmd);
    expect(await events.next('launch_failed', late.cmd.job_id, 2)).toMatchObject({ code: 'command_expired' });

    const running = runCmd({ command: ['sleep', '300'] });
    await publishCommand(bus, id, running);
    const { pid } = await events.next('started', running.job_id);
    await publishCommand(bus, id, kill(running.job_id, 1, 0), { nowMs: Date.now() - TEST_COMMAND_TTL_MS - 1000 });
    await refused(agent, 'expired', 2);
    expect(pidAlive(pid!)).toBe(true);
    // Its re-send, signed afresh, kills it.
    await publishCommand(bus, id, kill(running.job_id, 1, 0));
    expect(await events.next('exited', running.job_id)).toMatchObject({ killed: true });
    expect(await linesOf(late.mark)).toEqual([]);
  });

  it('a run of an attempt already run never launches again: re-signed, after a restart, after its entry is forgotten, and after another restart', async () => {
    const id = nodeId();
    const events = await EventReader.open(id);
    const first = await processAgent(id);
    const { cmd, mark } = markerRun('replay');
    const body = encodeJson(cmd);
    const captured = testSigner.sign(id, cmd, body, Date.now());
    await bus.js.publish(bus.t.subjects.nodeCmd(id), body, { headers: captured });
    await events.next('exited', cmd.job_id);
    expect(await linesOf(mark)).toEqual(['ran']);

    // Re-published with a fresh, valid signature after it finished: answered with its exit, not run.
    await publishCommand(bus, id, cmd);
    await events.next('exited', cmd.job_id, 2);
    expect(first.rejectedCommands.replayed).toBe(1);
    for (let i = 0; i < 100 && (await readDoneLog(first.stateDir)).length === 0; i++) await sleep(20);
    await first.stop();

    // After a restart (the attempt is in the done log).
    const second = await processAgent(id, { stateDir: first.stateDir });
    await publishCommand(bus, id, cmd);
    await events.next('exited', cmd.job_id, 3);
    expect(second.rejectedCommands.replayed).toBe(1);
    await second.stop();

    // The retention sweep forgets the attempt's entry; the seen runs still know it.
    const forgetful = { stateDir: first.stateDir, entryRetentionMs: 0, workDirRetentionMs: 0, sweepIntervalMs: 50 };
    const third = await processAgent(id, forgetful);
    for (let i = 0; i < 250 && (await readDoneLog(first.stateDir)).length > 0; i++) await sleep(20);
    expect(await readDoneLog(first.stateDir)).toEqual([]);
    await publishCommand(bus, id, cmd);
    await refused(third, 'replayed', 1);
    await bus.js.publish(bus.t.subjects.nodeCmd(id), body, { headers: captured }); // the very copy first seen
    await refused(third, 'replayed', 2);
    await third.stop();
    expect((await readSeenRuns(first.stateDir)).filter((r) => r.job_id === cmd.job_id).length).toBeGreaterThan(0);

    // And once more after a restart: the seen runs are on disk (seen-runs.jsonl).
    const fourth = await processAgent(id, forgetful);
    await publishCommand(bus, id, cmd);
    await refused(fourth, 'replayed', 1);

    const control = markerRun('control');
    await publishCommand(bus, id, control.cmd);
    await events.next('exited', control.cmd.job_id);
    expect(await linesOf(control.mark)).toEqual(['ran']);
    expect(await linesOf(mark)).toEqual(['ran']);
    expect(events.of('started', cmd.job_id)).toHaveLength(1);
  });
});
