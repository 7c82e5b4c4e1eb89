/**
 * A NATS outage is not a node loss (issue "Fault tolerance", its first
 * item): on a nats-server of the test's own, killed with SIGKILL and
 * restarted on the same port and store, a running job keeps its attempt and
 * its node stays ready, because the coordinator counts no missed heartbeat
 * while it is itself cut off, and starts counting again only after the agents
 * had time to reconnect.
 *
 * Before this, the coordinator went on counting: after 3 intervals every node
 * was "lost" and every running job was requeued, so each ran twice.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningCoordinator } from '../../actors/coordinator/index.ts';
import pino from 'pino';
import { findNatsServer, freePort, spawnNatsServer } from '../../src/cli/nats-server.ts';
import { coordinatorPingMs } from '../../src/cli/coordinator.ts';
import { busOptions, connectBus, type Bus } from '../../src/wire/connection.ts';
import { exampleJob, startTestApp, type TestApp } from '../helpers/app.ts';
import { startTestCoordinator, until } from '../helpers/coordinator.ts';
import { ScriptedAgent } from '../helpers/scripted-agent.ts';

const HB = 200; // heartbeat interval (ms)
const LOST_MS = 10 * HB; // SCALAR_NODE_LOST_SEC
const dir = mkdtempSync(path.join(tmpdir(), 'scalar-nats-outage-'));
let port = 0;
let server: Awaited<ReturnType<typeof spawnNatsServer>> | undefined;
let t: TestApp;
let coordinator: RunningCoordinator;
let coordinatorBus: Bus;
let agent: ScriptedAgent;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const startServer = async () => {
  server = await spawnNatsServer(findNatsServer()!, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', path.join(dir, 'store')], {
    host: '127.0.0.1',
    port,
    logFile: path.join(dir, 'nats.log'),
  });
};

/** A one-GPU FAST job, placed on the agent and reported started: running, attempt 1. */
async function aRunningJob(): Promise<string> {
  const res = await t.call({ method: 'POST', url: '/jobs', payload: { ...exampleJob(), tier: 'FAST', gpu_count: 1, vram_per_gpu_gb: 40 } });
  expect(res.statusCode, res.body).toBe(201);
  const id = res.json().id as string;
  expect(await agent.expect('run')).toMatchObject({ job_id: id, attempt: 1 });
  await agent.started({ job_id: id, attempt: 1 });
  await until(async () => (await t.call({ method: 'GET', url: `/jobs/${id}` })).json().status === 'running');
  return id;
}

describe.skipIf(!findNatsServer())('a NATS outage', () => {
  beforeAll(async () => {
    port = await freePort();
    await startServer();
    // This server has no credentials: the test is about the coordinator's clock, not about trust.
    t = await startTestApp({ NATS_URL: `nats://127.0.0.1:${port}`, SCALAR_HEARTBEAT_INTERVAL_MS: String(HB) });
    // The coordinator's own connection, pinging as `scalar coordinator` does (a quarter of the lost timeout).
    coordinatorBus = await connectBus(
      { ...busOptions(t.cfg, 'outage-coordinator', 'coordinator'), pingIntervalMs: coordinatorPingMs({ SCALAR_NODE_LOST_SEC: LOST_MS / 1000 }) },
      pino({ level: 'silent' }),
    );
    coordinator = startTestCoordinator(t, HB, { bus: coordinatorBus, nodeLostAfterMs: LOST_MS });
    await coordinator.leading;
    agent = new ScriptedAgent(t.bus, 'fast-outage', { pool: 'fast', gpus: 8, vramGb: 80 });
    await agent.register();
    agent.heartbeats(HB);
    await until(async () => (await t.call({ method: 'GET', url: `/nodes/${agent.nodeId}` })).json().state === 'ready');
  });

  afterAll(async () => {
    agent?.stopHeartbeats();
    await coordinator?.stop();
    await coordinatorBus?.close();
    await t?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('of many heartbeat intervals requeues nothing: the job keeps attempt 1 and its node stays ready', { timeout: 60_000 }, async () => {
    const id = await aRunningJob();

    // NATS dies for twice the lost timeout, and comes back on the same store.
    process.kill(server!.pid, 'SIGKILL');
    await sleep(2 * LOST_MS);
    await startServer();
    await until(async () => coordinatorBus.nc.flush().then(() => true, () => false), 10_000, 'the bus reconnects');
    // Past the grace and a whole lost timeout: a node that heartbeats again is not lost.
    await sleep(LOST_MS + 4 * HB);

    const node = (await t.call({ method: 'GET', url: `/nodes/${agent.nodeId}` })).json();
    expect(node.state).toBe('ready');
    const job = (await t.call({ method: 'GET', url: `/jobs/${id}` })).json();
    expect(job).toMatchObject({ status: 'running', attempt: 1, node_id: agent.nodeId });
    const events = (await t.call({ method: 'GET', url: `/jobs/${id}/events` })).json().events as Array<{ event: string; to: string }>;
    // Submitted, queued, scheduled, started: no requeue.
    expect(events.map((e) => e.to)).toEqual(['pending', 'queued', 'scheduled', 'running']);
  });

  it('frozen (SIGSTOP), so that connections stay open but nothing answers: the coordinator notices by its pings and loses nothing', { timeout: 60_000 }, async () => {
    const id = await aRunningJob();

    // Frozen for twice the lost timeout: no FIN, no RST, just silence.
    process.kill(server!.pid, 'SIGSTOP');
    await sleep(2 * LOST_MS);
    process.kill(server!.pid, 'SIGCONT');
    await until(async () => coordinatorBus.nc.flush().then(() => true, () => false), 10_000, "the coordinator's bus answers again");
    await sleep(LOST_MS + 4 * HB);

    expect((await t.call({ method: 'GET', url: `/nodes/${agent.nodeId}` })).json().state).toBe('ready');
    expect((await t.call({ method: 'GET', url: `/jobs/${id}` })).json()).toMatchObject({ status: 'running', attempt: 1 });
  });

  it('still loses a node that really went silent, once NATS is fine', { timeout: 30_000 }, async () => {
    agent.stopHeartbeats();
    await until(async () => (await t.call({ method: 'GET', url: `/nodes/${agent.nodeId}` })).json().state === 'lost', 10_000, 'the silent node is lost');
  });
});
