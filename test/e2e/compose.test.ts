/**
 * docker-compose.yml, read as written: this machine has no Docker engine, so
 * the test runs what compose would run, with compose's paths mapped onto a
 * temporary folder.
 *   - Only the API publishes a port, and no service carries a password.
 *   - The one-shot `init` service's script, run as compose runs it (as root),
 *     gives every service the files its environment names, in the volume it
 *     mounts, owned by its user and readable by it alone.
 *   - The NATS of compose (nats.conf with init's auth.conf) refuses a client
 *     without credentials, so the forged-command probe launches nothing, and
 *     an agent's credential cannot speak for the other agent.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { findNatsServer, freePort, spawnNatsServer } from '../../src/cli/nats-server.ts';
import { BusAuthError, connectBus } from '../../src/wire/connection.ts';
import { encodeJson } from '../../src/wire/messages.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const BIN = path.join(ROOT, 'bin/scalar.mjs');

interface Service {
  image?: string;
  build?: string;
  user?: string;
  entrypoint?: string[];
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
}
const compose = parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service> };
const services = compose.services;
const tmp = mkdtempSync(path.join(tmpdir(), 'scalar-compose-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A service's named-volume mounts: container path → volume name. */
function mounts(s: Service): Map<string, string> {
  const m = new Map<string, string>();
  for (const v of s.volumes ?? []) {
    const [src, dst] = v.split(':') as [string, string];
    if (!src.startsWith('.')) m.set(dst, src);
  }
  return m;
}

/** Where a container path of a service lands in the test's folder, through the volume mounted there. */
function onHost(s: Service, file: string): string | null {
  for (const [dst, vol] of mounts(s)) if (file.startsWith(dst + '/')) return path.join(tmp, 'volumes', vol, file.slice(dst.length + 1));
  return null;
}

describe('docker-compose.yml', () => {
  it('publishes only the API port, and no service carries a password in its environment', () => {
    const published = Object.entries(services).filter(([, s]) => s.ports?.length).map(([n, s]) => [n, s.ports]);
    expect(published).toEqual([['api', ['8080:8080']]]);
    for (const [name, s] of Object.entries(services)) {
      for (const [k, v] of Object.entries(s.environment ?? {})) {
        expect(k, name).not.toMatch(/^POSTGRES_PASSWORD$|^NATS_PASSWORD$/);
        if (k === 'DATABASE_URL') expect(new URL(v).password, `${name} ${k}`).toBe('');
      }
    }
    expect(readFileSync(path.join(ROOT, 'nats.conf'), 'utf8')).not.toMatch(/^\s*(http_port|http|monitor_port)\s*:/m);
  });

  const root = process.getuid?.() === 0;
  it.runIf(root && findNatsServer())(
    "init gives each service exactly the files it names; compose's NATS refuses strangers and keeps agents apart",
    { timeout: 60_000 },
    async () => {
      const init = services.init!;
      expect(init.user).toBe('0:0');
      // Compose turns $$ into $; the paths of init's volumes move into the test's folder.
      let script = init.command![0]!.replaceAll('$$', '$').replaceAll('node /app/bin/scalar.mjs', `SCALAR_FROM_SOURCE=1 ${process.execPath} ${BIN}`);
      for (const [dst, vol] of [...mounts(init)].sort((a, b) => b[0].length - a[0].length)) {
        script = script.replaceAll(dst, path.join(tmp, 'volumes', vol));
        mkdirSync(path.join(tmp, 'volumes', vol), { recursive: true }); // docker creates a mounted volume
      }
      expect(script, 'every path init writes is on one of its volumes').not.toMatch(/ \/(out|secrets)\//);
      const run = () => promisify(execFile)('sh', ['-c', script], { env: { ...process.env, SCALAR_NATS_PREFIX: 'scalar' } });
      expect((await run()).stdout).toContain('secrets ready');

      // Every file a service's environment names exists in the volume it mounts, owned by its user, mode 0400.
      const owner: Record<string, number> = { postgres: 999, nats: 0 };
      for (const [name, s] of Object.entries(services)) {
        for (const [k, v] of Object.entries(s.environment ?? {})) {
          if (!/(_FILE|^NATS_CREDS)$/.test(k)) continue;
          const file = onHost(s, v);
          expect(file, `${name}: ${k}=${v} is on no volume`).not.toBeNull();
          const st = statSync(file!);
          expect(st.mode & 0o777, `${name} ${k}`).toBe(0o400);
          expect(st.uid, `${name} ${k}`).toBe(owner[name] ?? 1000);
        }
      }
      // Each agent holds its own NATS credential and no other.
      const fast = onHost(services['agent-fast-1']!, services['agent-fast-1']!.environment!.NATS_CREDS!)!;
      const flex = onHost(services['agent-flex-1']!, services['agent-flex-1']!.environment!.NATS_CREDS!)!;
      expect(readFileSync(fast, 'utf8')).not.toBe(readFileSync(flex, 'utf8'));
      // The API and the database share a generated password; nothing else in the volumes of the agents.
      const pg = readFileSync(onHost(services.postgres!, services.postgres!.environment!.POSTGRES_PASSWORD_FILE!)!, 'utf8');
      expect(pg).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(readFileSync(onHost(services.api!, services.api!.environment!.DATABASE_PASSWORD_FILE!)!, 'utf8')).toBe(pg);

      // Running init again keeps every secret.
      await run();
      expect(readFileSync(onHost(services.postgres!, services.postgres!.environment!.POSTGRES_PASSWORD_FILE!)!, 'utf8')).toBe(pg);

      // compose's NATS: nats.conf as written, its include and store mapped into the folder, on a free port.
      const nats = services.nats!;
      const port = await freePort();
      let conf = readFileSync(path.join(ROOT, 'nats.conf'), 'utf8').replace(/^port: 4222$/m, `listen: "127.0.0.1:${port}"`);
      // NATS resolves an include against the config file's folder, where compose mounts nats.conf.
      const confMount = nats.volumes!.find((v) => v.startsWith('./nats.conf:'))!.split(':')[1]!;
      const include = /^include "([^"]+)"$/m.exec(conf)![1]!;
      const authOnHost = onHost(nats, path.posix.join(path.posix.dirname(confMount), include));
      expect(authOnHost && existsSync(authOnHost), `${include} comes from a volume init fills`).toBe(true);
      const confFile = path.join(tmp, 'etc-nats', 'nats.conf');
      mkdirSync(path.dirname(confFile));
      conf = conf.replace(`"${include}"`, `"${path.relative(path.dirname(confFile), authOnHost!)}"`).replace('store_dir: "/data"', `store_dir: "${path.join(tmp, 'natsdata')}"`);
      writeFileSync(confFile, conf);
      const server = await spawnNatsServer(findNatsServer()!, ['-c', confFile], { host: '127.0.0.1', port, logFile: path.join(tmp, 'nats.log') }).catch((err: Error) => {
        throw new Error(`${err.message}\n${readFileSync(path.join(tmp, 'nats.log'), 'utf8')}`);
      });
      const log = pino({ level: 'silent' });
      const opts = { url: server.url, name: 'compose-probe', prefix: 'scalar', logRetentionHours: 1, logMaxMb: 64, connectTimeoutMs: 2000 };
      try {
        const anonymous = await connectBus({ ...opts, role: 'api' }, log).catch((e: Error) => e);
        expect(anonymous).toBeInstanceOf(BusAuthError);
        const coord = await connectBus({ ...opts, role: 'coordinator', auth: { credsFile: onHost(services.coordinator!, services.coordinator!.environment!.NATS_CREDS!)! } }, log);
        const agent = await connectBus({ ...opts, role: 'agent', nodeId: 'fast-1', auth: { credsFile: fast } }, log);
        const forged = await agent.js.publish('scalar.node.flex-1.cmd', encodeJson({ type: 'run', command: ['id'] }), { timeout: 2000 }).catch((e: Error) => e);
        expect((forged as Error).message).toMatch(/Permissions Violation/);
        const own = await agent.js.publish('scalar.node.fast-1.events', encodeJson({}));
        expect(own.stream).toBe('SCALAR_NODE_EVENTS');
        await agent.close();
        await coord.close();
      } finally {
        await server.stop();
      }
    },
  );
});
