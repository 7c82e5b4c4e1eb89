/**
 * The inspector bridge (actors/coordinator/inspect.ts) with hostile callers:
 * where it listens, who may watch, and that nobody but the coordinator can
 * put an event in front of a viewer. Real sockets on loopback, real actors.
 */
import { afterEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { createActor } from 'xstate';
import { WebSocket } from 'ws';
import { startInspection, type Inspection } from '../../../actors/coordinator/inspect.ts';
import { jobMachine } from '../../../machines/job.machine.ts';
import { ConfigError, parseConfig } from '../../../src/config/index.ts';

const log = pino({ level: 'silent' });
const TOKEN = 'insp-token-0123456789abcdefghijklmnopqrstuv';
let bridge: Inspection | undefined;
const sockets: WebSocket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.terminate();
  await bridge?.stop();
  bridge = undefined;
});

const base = (b: Inspection) => `127.0.0.1:${b.address.port}`;

/** Opens a viewer; resolves with it once open, or rejects with the HTTP status the upgrade got. */
function viewer(url: string): Promise<{ ws: WebSocket; messages: string[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    sockets.push(ws);
    const messages: string[] = [];
    ws.on('message', (d) => messages.push(d.toString()));
    ws.once('open', () => resolve({ ws, messages }));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

async function until(ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A real job actor under inspection, driven through a few events. */
function driveAJob(b: Inspection): void {
  const actor = createActor(jobMachine, { input: { jobId: 'job-1', maxAttempts: 3 }, inspect: b.inspect }).start();
  actor.send({ type: 'admit' });
  actor.send({ type: 'place', node_id: 'fast-1', gpu_indices: [0] });
}

describe('inspector bridge', () => {
  it('listens on loopback by default, serves the page, and streams the live actors to a viewer', async () => {
    bridge = await startInspection({ port: 0, host: '127.0.0.1' }, log);
    expect(bridge.address.address).toBe('127.0.0.1');
    const page = await fetch(`http://${base(bridge)}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<iframe id="inspector"');
    expect((await fetch(`http://${base(bridge)}/other`)).status).toBe(404);

    const v = await viewer(`ws://${base(bridge)}/`);
    driveAJob(bridge);
    await until(() => v.messages.some((m) => m.includes('"type":"place"')));
    expect(v.messages.every((m) => JSON.parse(m).type.startsWith('@xstate.') || JSON.parse(m).type.startsWith('@statelyai.'))).toBe(true);
  });

  it('a late viewer gets what it missed (the last events)', async () => {
    bridge = await startInspection({ port: 0, host: '127.0.0.1' }, log);
    const first = await viewer(`ws://${base(bridge)}/`);
    driveAJob(bridge);
    await until(() => first.messages.some((m) => m.includes('"type":"place"')));
    const late = await viewer(`ws://${base(bridge)}/`);
    await until(() => late.messages.length === first.messages.length);
  });

  it('a viewer cannot inject events into another viewer, and one that floods is dropped', async () => {
    bridge = await startInspection({ port: 0, host: '127.0.0.1' }, log);
    const victim = await viewer(`ws://${base(bridge)}/`);
    const attacker = await viewer(`ws://${base(bridge)}/`);
    attacker.ws.send(JSON.stringify({ type: '@xstate.event', event: { type: 'forged' }, sessionId: 'x' }));
    const closed = new Promise<number>((r) => attacker.ws.once('close', (code) => r(code)));
    attacker.ws.send('x'.repeat(8192));
    expect(await closed).toBe(1009);
    // The bridge still serves, and the victim saw only the coordinator's events.
    driveAJob(bridge);
    await until(() => victim.messages.some((m) => m.includes('"type":"place"')));
    expect(victim.messages.some((m) => m.includes('forged'))).toBe(false);
  });

  it('only the coordinator publishes: the producer path refuses a guessed key', async () => {
    bridge = await startInspection({ port: 0, host: '127.0.0.1' }, log);
    await expect(viewer(`ws://${base(bridge)}/producer`)).rejects.toThrow('HTTP 401');
    await expect(viewer(`ws://${base(bridge)}/producer?key=guess`)).rejects.toThrow('HTTP 401');
  });

  it('with a token, the page and the WebSocket refuse a caller without it or with a wrong one', async () => {
    bridge = await startInspection({ port: 0, host: '127.0.0.1', token: TOKEN }, log);
    expect(bridge.url).toBe(`http://${base(bridge)}/?token=${TOKEN}`);
    expect((await fetch(`http://${base(bridge)}/`)).status).toBe(401);
    expect((await fetch(`http://${base(bridge)}/?token=${TOKEN.slice(0, -1)}x`)).status).toBe(401);
    expect((await fetch(bridge.url)).status).toBe(200);
    await expect(viewer(`ws://${base(bridge)}/`)).rejects.toThrow('HTTP 401');
    await expect(viewer(`ws://${base(bridge)}/?token=short`)).rejects.toThrow('HTTP 401');
    const v = await viewer(`ws://${base(bridge)}/?token=${TOKEN}`);
    driveAJob(bridge);
    await until(() => v.messages.some((m) => m.includes('"type":"place"')));
  });
});

describe('inspector configuration', () => {
  it('defaults to loopback, with no token', () => {
    const cfg = parseConfig({});
    expect(cfg.SCALAR_INSPECT_HOST).toBe('127.0.0.1');
    expect(cfg.SCALAR_INSPECT_TOKEN).toBeUndefined();
  });

  it.each(['0.0.0.0', '10.1.2.3', '::', 'coordinator.internal'])('SCALAR_INSPECT_HOST=%s without a token is refused, naming SCALAR_INSPECT_TOKEN', (host) => {
    let err: unknown;
    try {
      parseConfig({ SCALAR_INSPECT_HOST: host });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variables).toEqual(['SCALAR_INSPECT_TOKEN']);
    expect(parseConfig({ SCALAR_INSPECT_HOST: host, SCALAR_INSPECT_TOKEN: TOKEN }).SCALAR_INSPECT_HOST).toBe(host);
  });

  it.each(['127.0.0.1', '127.1.2.3', '::1', 'localhost'])('SCALAR_INSPECT_HOST=%s (loopback) needs no token', (host) => {
    expect(parseConfig({ SCALAR_INSPECT_HOST: host }).SCALAR_INSPECT_HOST).toBe(host);
  });

  it.each([
    ['too short', 'abc'],
    ['not URL-safe', `${'a'.repeat(32)}&x=1`],
    ['oversized', 'a'.repeat(600)],
  ])('a token that is %s is refused, naming it', (_what, token) => {
    expect(() => parseConfig({ SCALAR_INSPECT_TOKEN: token })).toThrow(/SCALAR_INSPECT_TOKEN/);
  });
});
