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
import { findNatsServer, freePort, spawnNatsServer } from '../../src/cli/nats-server.ts';
import { exampleJob, startTestApp, type TestApp } from '../helpers/app.ts';
import { startTestCoordinator, until } from '../helpers/coordinator.ts';
import { ScriptedAgent } from '../helpers/scripted-agent.ts';

const HB = 200; // heartbeat interval (ms): a node is lost after 3 missed
const dir = mkdtempSync(path.join(tmpdir(), 'scalar-nats-outage-'));
let port = 0;
let server: Awaited<ReturnType<typeof spawnNatsServer>> | undefined;
let t: TestApp;
let coordinator: RunningCoordinator;
let agent: ScriptedAgent;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const startServer = async () => {
  server = await spawnNatsServer(findNatsServer()!, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', path.join(dir, 'store')], {
    host: '127.0.0.1',
    port,
    logFile: path.join(dir, 'nats.log'),
  });
};

describe.skipIf(!findNatsServer())('a NATS outage', () => {
  beforeAll(async () => {
    port = await freePort();
    await startServer();
    // This server has no credentials: the test is about the coordinator's clock, not about trust.
    t = await startTestApp({ NATS_URL: `nats://127.0.0.1:${port}`, SCALAR_HEARTBEAT_INTERVAL_MS: String(HB) });
    coordinator = startTestCoordinator(t, HB);
    await coordinator.leading;
    agent = new ScriptedAgent(t.bus, 'fast-outage', { pool: 'fast', gpus: 8, vramGb: 80 });
    await agent.register();
    agent.heartbeats(HB);
    await until(async () => (await t.call({ method: 'GET', url: `/nodes/${agent.nodeId}` })).json().state === 'ready');
  });

  afterAll(async () => {
    agent?.stopHeartbeats();
    await coordinator?.stop();
    await t?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('of many heartbeat intervals requeues nothing: the job keeps attempt 1 and its node stays ready', { timeout: 60_000 }, async () => {
    const res = await t.call({ method: 'POST', url: '/jobs', payload: { ...exampleJob(), tier: 'FAST', gpu_count: 1, vram_per_gpu_gb: 40 } });
    expect(res.statusCode, res.body).toBe(201);
    const id = res.json().id as string;
    expect(await agent.expect('run')).toMatchObject({ job_id: id, attempt: 1 });
    await agent.started({ job_id: id, attempt: 1 });
    await until(async () => (await t.call({ method: 'GET', url: `/jobs/${id}` })).json().status === 'running');

    // NATS dies for 10 heartbeat intervals (3 are enough to lose a node), and comes back on the same store.
    process.kill(server!.pid, 'SIGKILL');
    await sleep(10 * HB);
    await startServer();
    await until(async () => !t.bus.nc.isClosed() && (await t.bus.nc.flush().then(() => true, () => false)), 10_000, 'the bus reconnects');
    // Well past the grace and 3 more intervals: a node that heartbeats again is not lost.
    await sleep(8 * HB);

    const node = (await t.call({ method: 'GET', url: `/nodes/${agent.nodeId}` })).json();
    expect(node.state).toBe('ready');
    const job = (await t.call({ method: 'GET', url: `/jobs/${id}` })).json();
    expect(job).toMatchObject({ status: 'running', attempt: 1, node_id: agent.nodeId });
    const events = (await t.call({ method: 'GET', url: `/jobs/${id}/events` })).json().events as Array<{ event: string; to: string }>;
    // Submitted, queued, scheduled, started: no requeue.
    expect(events.map((e) => e.to)).toEqual(['pending', 'queued', 'scheduled', 'running']);

    // And a node that really is gone is still lost once NATS is back.
    agent.stopHeartbeats();
    await until(async () => (await t.call({ method: 'GET', url: `/nodes/${agent.nodeId}` })).json().state === 'lost', 10_000, 'the silent node is lost');
  });
});
