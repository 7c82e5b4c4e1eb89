import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { answers, ensureNats, findNatsServer, NatsMissingError } from '../../src/cli/nats-server.ts';
import { connectBus } from '../../src/wire/connection.ts';

const log = pino({ level: 'silent' });
const dir = mkdtempSync(path.join(tmpdir(), 'scalar-nats-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe('scalar dev: NATS on embedded defaults', () => {
  it('finds nats-server on PATH, and nothing when there is none', () => {
    const bin = path.join(dir, 'bin');
    rmSync(bin, { recursive: true, force: true });
    mkdirSync(bin);
    writeFileSync(path.join(bin, 'nats-server'), '#!/bin/sh\n');
    chmodSync(path.join(bin, 'nats-server'), 0o755);
    expect(findNatsServer(`/nonexistent${path.delimiter}${bin}`, [])).toBe(path.join(bin, 'nats-server'));
    expect(findNatsServer('/nonexistent', [])).toBeNull();
  });

  it('without NATS and without nats-server it fails with a one-line instruction', async () => {
    const port = await freePort();
    const err = await ensureNats(`nats://127.0.0.1:${port}`, dir, log, () => null).catch((e) => e);
    expect(err).toBeInstanceOf(NatsMissingError);
    expect(err.message).not.toContain('\n');
    expect(err.message).toMatch(/install nats-server/);
    // compose keeps its NATS on the compose network; the one-liner publishes a NATS on loopback only.
    expect(err.message).toMatch(/docker run --rm -p 127\.0\.0\.1:4222:4222 nats:2\.10 -js/);
  });

  it('uses the NATS that answers at NATS_URL and starts nothing', async () => {
    const nats = await ensureNats('nats://127.0.0.1:4222', dir, log, () => {
      throw new Error('must not look for a binary');
    });
    expect(nats.started).toBe(false);
  });

  it.skipIf(!findNatsServer())('starts a local nats-server with JetStream when nothing answers, and stops it', async () => {
    const port = await freePort();
    const nats = await ensureNats(`nats://127.0.0.1:${port}`, dir, log);
    try {
      expect(nats.started).toBe(true);
      expect(await answers('127.0.0.1', port)).toBe(true);
      // JetStream is on: Scalar's streams can be created there.
      const bus = await connectBus({ url: nats.url, name: 'test', prefix: 'scalar', logRetentionHours: 1, logMaxMb: 8, role: 'coordinator' }, log);
      expect((await bus.jsm.streams.info(bus.t.streams.JOBS)).config.name).toBe('SCALAR_JOBS');
      await bus.close();
    } finally {
      await nats.stop();
    }
    expect(await answers('127.0.0.1', port)).toBe(false);
  });
});
