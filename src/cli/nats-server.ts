/**
 * Local nats-server processes: the authenticated one `scalar dev` starts
 * (startSecuredNats, from a `scalar nats-config` directory), and the open one
 * the test setup starts when nothing answers at NATS_URL (ensureNats).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync, openSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import { writeServerConf } from './nats-auth.ts';

export class NatsMissingError extends Error {
  /** `own`: `scalar dev` wanted to start its own authenticated server (NATS_URL unset). */
  constructor(url: string, own = false) {
    super(
      (own
        ? 'scalar dev starts a nats-server of its own (with credentials) when NATS_URL is unset, and none is installed: install nats-server '
        : `nothing answers at NATS_URL (${url}) and no nats-server is installed: install nats-server `) +
        `(Debian/Ubuntu: apt-get install nats-server; macOS: brew install nats-server)` +
        (own
          ? ', or set NATS_URL to a server you run'
          : ' or run `docker run --rm -p 127.0.0.1:4222:4222 nats:2.10 -js` (loopback only: this NATS has no credentials)'),
    );
    this.name = 'NatsMissingError';
  }
}

export interface LocalNats {
  url: string;
  /** True when this process started the server (and stops it in `stop`). */
  started: boolean;
  stop(): Promise<void>;
}

function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url.includes('://') ? url : `nats://${url}`);
  return { host: u.hostname || '127.0.0.1', port: Number(u.port || 4222) };
}

export function answers(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** The nats-server binary on PATH (or in the sbin folders Debian uses), or null. */
export function findNatsServer(
  envPath = process.env.PATH ?? '',
  extraDirs: readonly string[] = ['/usr/sbin', '/usr/local/sbin', '/usr/local/bin'],
): string | null {
  const dirs = [...envPath.split(path.delimiter).filter(Boolean), ...extraDirs];
  for (const dir of dirs) {
    const candidate = path.join(dir, 'nats-server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return null;
}

export async function ensureNats(
  url: string,
  dataDir: string,
  log: Logger,
  find: () => string | null = () => findNatsServer(),
): Promise<LocalNats> {
  const { host, port } = hostPort(url);
  if (await answers(host, port)) return { url, started: false, stop: async () => undefined };
  const bin = find();
  if (!bin) throw new NatsMissingError(url);

  const storeDir = path.resolve(dataDir, 'nats');
  mkdirSync(storeDir, { recursive: true });
  const nats = await spawnNatsServer(bin, ['-a', host, '-p', String(port), '-js', '-sd', storeDir], { host, port, logFile: path.join(storeDir, 'nats-server.log') });
  log.info({ bin, store: storeDir, url }, 'started a local nats-server with JetStream');
  return { ...nats, url };
}

/** Starts `bin args…` and waits (up to 10 s) until it listens on host:port. */
export async function spawnNatsServer(bin: string, args: string[], o: { host: string; port: number; logFile: string }): Promise<LocalNats & { pid: number }> {
  const logFd = openSync(o.logFile, 'a');
  const child: ChildProcess = spawn(bin, args, { stdio: ['ignore', logFd, logFd] });
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const deadline = Date.now() + 10_000;
  while (!(await answers(o.host, o.port, 300))) {
    if (exited || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`started ${bin} but it did not listen on ${o.host}:${o.port}; see ${o.logFile}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: `nats://${o.host}:${o.port}`,
    started: true,
    pid: child.pid!,
    async stop() {
      if (exited) return;
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(timer);
    },
  };
}

/**
 * Starts a nats-server from an auth directory (src/cli/nats-auth.ts): its
 * nats-server.conf is written for host:port and the store, so only the
 * credentials in its auth.conf may connect.
 */
export async function startSecuredNats(
  dir: string,
  o: { host: string; port: number; storeDir: string; bin?: string },
): Promise<LocalNats & { pid: number }> {
  const bin = o.bin ?? findNatsServer();
  if (!bin) throw new NatsMissingError(`nats://${o.host}:${o.port}`);
  mkdirSync(o.storeDir, { recursive: true });
  const conf = writeServerConf(dir, { listen: `${o.host}:${o.port}`, storeDir: o.storeDir });
  return spawnNatsServer(bin, ['-c', conf], { host: o.host, port: o.port, logFile: path.join(dir, 'nats-server.log') });
}

/** A free TCP port on host (the OS picks one). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
