/**
 * Cluster trust on a real nats-server that demands credentials, set up as
 * `scalar nats-config` sets one up (test/helpers/secured-nats.ts): what a
 * client without credentials, and an agent's credential, can and cannot do;
 * revocation; and a job that runs end to end with each role on its own
 * credential, so the permissions are known to be enough.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createUser } from '@nats-io/nkeys';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../actors/agent/agent.ts';
import { revokeCredential, reloadServer } from '../../src/cli/nats-auth.ts';
import { findNatsServer } from '../../src/cli/nats-server.ts';
import { BusAuthError, CredentialsFileError, connectBus, type Bus } from '../../src/wire/connection.ts';
import { encodeJson, type ExitedEvent } from '../../src/wire/messages.ts';
import { ensureNodeConsumer } from '../../src/wire/node-consumer.ts';
import type { RunningCoordinator } from '../../actors/coordinator/index.ts';
import { exampleJob, startTestApp, type TestApp } from '../helpers/app.ts';
import { startTestCoordinator, until } from '../helpers/coordinator.ts';
import { createRuntime, parseGpuSpec } from '../../src/runtimes/index.ts';
import { startTestSecuredNats, type SecuredNats } from '../helpers/secured-nats.ts';
import { testSigner, testVerifier } from '../helpers/signing.ts';
import { spawn } from 'node:child_process';

const BIN = new URL('../../bin/scalar.mjs', import.meta.url).pathname;

const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const prefix = `test_auth_${randomBytes(4).toString('hex')}`;
const jobId = '3b0c5c1e-8f1e-4a8e-9d55-0a6a4c0f2b11';
let nats: SecuredNats;
let coordinator: Bus;
let agentA: Bus;
const open: Bus[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!findNatsServer())('NATS with per-role credentials', () => {
  beforeAll(async () => {
    nats = await startTestSecuredNats(prefix, ['node-a', 'node-b', 'node-gone', 'node-proc']);
    coordinator = await nats.connect('coordinator');
    agentA = await nats.connect('agent', 'node-a');
    open.push(coordinator, agentA);
    // The coordinator creates each node's command consumer (agents may not).
    for (const n of ['node-a', 'node-b']) await ensureNodeConsumer(coordinator.jsm, coordinator.t, n);
  });

  afterAll(async () => {
    for (const b of open.splice(0)) await b.close().catch(() => undefined);
    await nats?.stop();
  });

  describe('connecting', () => {
    it('a client without credentials cannot connect, and is told which variable to set', async () => {
      const err = await nats.connect('agent', 'node-a', { credsFile: null }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(BusAuthError);
      expect((err as Error).message).toMatch(/requires credentials.*NATS_CREDS/);
    });

    it('a credential the server does not list is refused', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'scalar-stranger-'));
      const file = join(dir, 'stranger.nk');
      await writeFile(file, new TextDecoder().decode(createUser().getSeed()), { mode: 0o600 });
      const err = await nats.connect('agent', 'node-a', { credsFile: file }).catch((e: Error) => e);
      await rm(dir, { recursive: true, force: true });
      expect(err).toBeInstanceOf(BusAuthError);
      expect((err as Error).message).toMatch(/refused the agent credentials/);
    });

    it('a credentials file that is neither a seed nor a .creds file fails with one line naming NATS_CREDS', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'scalar-badcreds-'));
      const file = join(dir, 'bad.nk');
      await writeFile(file, 'not a key\n');
      const err = await nats.connect('agent', 'node-a', { credsFile: file }).catch((e: Error) => e);
      await rm(dir, { recursive: true, force: true });
      expect(err).toBeInstanceOf(CredentialsFileError);
      expect((err as Error).message).toBe(`NATS_CREDS=${file}: neither a NATS .creds file nor a user nkey seed (SU…)`);
    });

    it('a server that takes clients without credentials gets a loud warning from every role at start', async () => {
      const lines: string[] = [];
      const capture = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
      const url = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
      const openPrefix = `test_open_${randomBytes(4).toString('hex')}`;
      for (const role of ['api', 'coordinator', 'agent'] as const) {
        const b = await connectBus({ url, name: 'warn-test', prefix: openPrefix, logRetentionHours: 1, logMaxMb: 8, role, nodeId: role === 'agent' ? 'n1' : undefined }, capture);
        expect(b.secured).toBe(false);
        if (role === 'coordinator') for (const st of Object.values(b.t.streams)) await b.jsm.streams.delete(st).catch(() => undefined);
        await b.close();
      }
      const warnings = lines.map((l) => JSON.parse(l) as { level: number; role: string; msg: string }).filter((l) => l.level === 40);
      expect(warnings.map((w) => w.role)).toEqual(['api', 'coordinator', 'agent']);
      expect(warnings[0]!.msg).toMatch(/accepts clients without credentials: anyone who reaches it can run commands on the agents/);
      // And the secured server gets none.
      lines.length = 0;
      const quiet = await connectBus({ url: nats.url, name: 'warn-test', prefix, logRetentionHours: 1, logMaxMb: 64, role: 'api', auth: { credsFile: nats.creds('api') } }, capture);
      await quiet.close();
      expect(lines).toEqual([]);
    });

    it('the connection knows the server is secured, so the agent leaves streams and consumers to the coordinator', () => {
      expect(agentA.secured).toBe(true);
      expect(coordinator.secured).toBe(true);
    });
  });

  describe("an agent's credential", () => {
    it("cannot publish another node's exited event (and its own subject still works)", async () => {
      const forged: ExitedEvent = { type: 'exited', node_id: 'node-b', job_id: jobId, attempt: 1, code: 0, signal: null, killed: false, time: new Date().toISOString() };
      const err = await agentA.js.publish(agentA.t.subjects.nodeEvents('node-b'), encodeJson(forged), { timeout: 2000 }).catch((e: Error) => e);
      expect((err as Error).message).toMatch(/Permissions Violation for Publish to "[^"]*\.node\.node-b\.events"/);
      // Nothing was stored under node-b.
      const stored = await coordinator.jsm.streams.getMessage(coordinator.t.streams.NODE_EVENTS, { last_by_subj: coordinator.t.subjects.nodeEvents('node-b') });
      expect(stored).toBeNull();
      const own = await agentA.js.publish(agentA.t.subjects.nodeEvents('node-a'), encodeJson({ ...forged, node_id: 'node-a' }));
      expect(own.stream).toBe(coordinator.t.streams.NODE_EVENTS);
    });

    it("cannot publish another node's heartbeat or log lines", async () => {
      const hb = await agentA.js.publish(agentA.t.subjects.nodeHeartbeat('node-b'), encodeJson({}), { timeout: 1500 }).catch((e: Error) => e);
      expect((hb as Error).message).toMatch(/Permissions Violation/);
      const line = await agentA.js.publish(agentA.t.subjects.logs(jobId, 'node-b'), encodeJson({}), { timeout: 1500 }).catch((e: Error) => e);
      expect((line as Error).message).toMatch(/Permissions Violation for Publish to "[^"]*\.logs\.[^"]*\.node-b"/);
    });

    it("cannot subscribe to another node's commands", async () => {
      const sub = agentA.nc.subscribe(agentA.t.subjects.nodeCmd('node-b'));
      const closed = await Promise.race([sub.closed.then((e) => (e instanceof Error ? e.message : 'closed')), sleep(3000).then(() => 'still open')]);
      expect(closed).toMatch(/Permissions Violation for Subscription to "[^"]*\.node\.node-b\.cmd"/);
    });

    it("cannot read or pull another node's command consumer", async () => {
      const err = await agentA.js.consumers.get(agentA.t.streams.NODE_CMDS, agentA.t.consumers.node('node-b')).catch((e: Error) => e);
      expect((err as Error).message).toMatch(/Permissions Violation for Publish to "\$JS\.API\.CONSUMER\.INFO\.[^"]*\.node-node-b"/);
    });

    it("cannot create a consumer on another node's subjects (or any consumer)", async () => {
      const err = await agentA.jsm.consumers
        .add(agentA.t.streams.NODE_CMDS, { durable_name: 'snoop', filter_subject: agentA.t.subjects.nodeCmd('node-b') })
        .catch((e: Error) => e);
      expect((err as Error).message).toMatch(/Permissions Violation for Publish to "\$JS\.API\.CONSUMER\.(DURABLE\.)?CREATE/);
      const names = await coordinator.jsm.consumers.list(coordinator.t.streams.NODE_CMDS).next();
      expect(names.map((c) => c.name).sort()).toEqual(['node-node-a', 'node-node-b']);
    });

    it('cannot purge or delete a stream', async () => {
      await coordinator.js.publish(coordinator.t.subjects.nodeCmd('node-b'), encodeJson({ keep: true }));
      const purge = await agentA.jsm.streams.purge(agentA.t.streams.NODE_CMDS).catch((e: Error) => e);
      expect((purge as Error).message).toMatch(/Permissions Violation for Publish to "\$JS\.API\.STREAM\.PURGE/);
      const del = await agentA.jsm.streams.delete(agentA.t.streams.LOGS).catch((e: Error) => e);
      expect((del as Error).message).toMatch(/Permissions Violation/);
      expect((await coordinator.jsm.streams.info(coordinator.t.streams.NODE_CMDS)).state.messages).toBeGreaterThan(0);
    });

    it("cannot answer another node's whois, so it cannot stop that node's agent from starting", async () => {
      const sub = agentA.nc.subscribe(agentA.t.subjects.nodeWhois('node-b'), {
        callback: (_err, m) => {
          m?.respond?.(encodeJson({ boot_id: "forged", host: "evil" }));
        },
      });
      await sleep(200);
      expect(sub.isClosed()).toBe(true);
      const agentB = await nats.connect('agent', 'node-b');
      open.push(agentB);
      const err = await agentB.nc.request(agentB.t.subjects.nodeWhois('node-b'), encodeJson({}), { timeout: 1000 }).catch((e: Error) => e);
      expect((err as Error).message).toMatch(/no responders/);
    });

    it("cannot read other clients' replies: its inbox prefix is its own", async () => {
      const sub = agentA.nc.subscribe('_INBOX.>');
      const closed = await Promise.race([sub.closed.then((e) => (e instanceof Error ? e.message : 'closed')), sleep(3000).then(() => 'still open')]);
      expect(closed).toMatch(/Permissions Violation for Subscription to "_INBOX\.>"/);
    });
  });

  it('a revoked agent credential is disconnected at the reload, and refused when it connects again', async () => {
    const gone = await nats.connect('agent', 'node-gone');
    const file = nats.creds('agent', 'node-gone');
    const seed = readFileSync(file, 'utf8');
    expect(revokeCredential(nats.dir, prefix, 'agent', 'node-gone')).toBe(true);
    expect(reloadServer(nats.dir)).toEqual({ reloaded: true, pid: nats.pid });
    const closed = await Promise.race([gone.nc.closed().then(() => 'closed'), sleep(8000).then(() => 'still connected')]);
    expect(closed).toBe('closed');
    // The seed file is gone; someone who kept a copy is refused.
    const dir = await mkdtemp(join(tmpdir(), 'scalar-revoked-'));
    await writeFile(join(dir, 'kept.nk'), seed, { mode: 0o600 });
    const err = await nats.connect('agent', 'node-gone', { credsFile: join(dir, 'kept.nk') }).catch((e: Error) => e);
    await rm(dir, { recursive: true, force: true });
    expect(err).toBeInstanceOf(BusAuthError);
  });

  it('a running `scalar agent` whose credential is revoked logs why and exits 1', { timeout: 60_000 }, async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'scalar-auth-proc-'));
    const keys = join(stateDir, 'coordinator.pub');
    await writeFile(keys, testSigner.publicKey + '\n');
    const proc = spawn(process.execPath, [BIN, 'agent', '--runtime', 'simulated', '--gpus', '1x80', '--node-id', 'node-proc', '--state-dir', join(stateDir, 'state')], {
      env: { ...process.env, NATS_URL: nats.url, NATS_CREDS: nats.creds('agent', 'node-proc'), SCALAR_NATS_PREFIX: prefix, SCALAR_COORDINATOR_KEYS: '', SCALAR_COORDINATOR_KEYS_FILE: keys, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    try {
      // Registered: it waits for its consumer (nobody creates it here), which is enough.
      await until(async () => out.includes("waiting for the coordinator to create this node's command consumer"), 30_000, 'the agent is up');
      expect(out).not.toContain('accepts clients without credentials');
      revokeCredential(nats.dir, prefix, 'agent', 'node-proc');
      reloadServer(nats.dir);
      expect(await Promise.race([exited, sleep(15_000).then(() => 'still running')])).toBe(1);
      expect(out).toMatch(/NATS closed this agent's connection for good/);
    } finally {
      proc.kill('SIGKILL');
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  describe('a cluster with every role on its own credential', () => {
    let t: TestApp;
    let running: RunningCoordinator;
    let agent: Agent;
    let stateDir: string;

    beforeAll(async () => {
      const apiBus = await nats.connect('api');
      open.push(apiBus);
      t = await startTestApp({ SCALAR_NATS_PREFIX: prefix, NATS_URL: nats.url }, { bus: apiBus });
      running = startTestCoordinator(t, 500, { bus: coordinator });
      await running.leading;
      stateDir = await mkdtemp(join(tmpdir(), 'scalar-auth-agent-'));
      // node-b: its consumer was made by the coordinator in beforeAll; the agent never creates one.
      const agentB = await nats.connect('agent', 'node-b');
      open.push(agentB);
      agent = new Agent({
        nodeId: 'node-b',
        pool: 'fast',
        gpus: parseGpuSpec('2x80'),
        cpuCores: 16,
        ramGb: 128,
        runtime: createRuntime('simulated', { speed: 20 }),
        stateDir,
        heartbeatIntervalMs: 500,
        bus: agentB,
        verifier: testVerifier,
        log,
      });
      await agent.start();
    });

    afterAll(async () => {
      await agent?.stop();
      await running?.stop();
      await t?.close();
      if (stateDir) await rm(stateDir, { recursive: true, force: true });
    });

    it('runs a job submitted through the API to completion, and serves its log lines', async () => {
      const res = await t.call({ method: 'POST', url: '/jobs', payload: { ...exampleJob(), tier: 'FAST', gpu_count: 1, vram_per_gpu_gb: 40, cpu_cores: 2, ram_gb: 8, expected_duration_sec: 2 } });
      expect(res.statusCode).toBe(201);
      const id = res.json().id as string;
      const job = await until(async () => {
        const j = (await t.call({ method: 'GET', url: `/jobs/${id}` })).json();
        return j.status === 'completed' ? j : null;
      }, 20_000, 'the job completes');
      expect(job.node_id).toBe('node-b');
      const logs = (await t.call({ method: 'GET', url: `/jobs/${id}/logs` })).json();
      expect(logs.data.length).toBeGreaterThan(0);
      expect(logs.data.every((l: { node_id: string }) => l.node_id === 'node-b')).toBe(true);
    });

    it("counts an event that names another node than its sender's, and ignores it", async () => {
      const c = await running.leading;
      const before = c.impersonations.event;
      const forged: ExitedEvent = { type: 'exited', node_id: 'node-a', job_id: jobId, attempt: 1, code: 0, signal: null, killed: false, time: new Date().toISOString() };
      await (open.at(-1) as Bus).js.publish(coordinator.t.subjects.nodeEvents('node-b'), encodeJson(forged));
      await until(async () => c.impersonations.event === before + 1, 5000, 'the coordinator counts the impersonation');
    });
  });
});
