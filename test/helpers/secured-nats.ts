/**
 * A nats-server of a test's own that demands credentials, set up exactly as
 * `scalar nats-config` sets one up: one credential for the API, one for the
 * coordinator and one per node, with the permissions of src/wire/permissions.ts.
 * It listens on a free loopback port and stores under a temporary folder.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { credsFile, mintCredential } from '../../src/cli/nats-auth.ts';
import { freePort, startSecuredNats } from '../../src/cli/nats-server.ts';
import { connectBus, type Bus } from '../../src/wire/connection.ts';
import type { Role } from '../../src/wire/permissions.ts';

export interface SecuredNats {
  url: string;
  dir: string;
  prefix: string;
  pid: number;
  creds(role: Role, nodeId?: string): string;
  /** A bus with this role's credential (nodeId for an agent). */
  connect(role: Role, nodeId?: string, opts?: { credsFile?: string | null }): Promise<Bus>;
  stop(): Promise<void>;
}

export async function startTestSecuredNats(prefix: string, nodes: string[]): Promise<SecuredNats> {
  const dir = mkdtempSync(path.join(tmpdir(), 'scalar-nats-auth-'));
  mintCredential(dir, prefix, 'api');
  mintCredential(dir, prefix, 'coordinator');
  for (const n of nodes) mintCredential(dir, prefix, 'agent', n);
  const port = await freePort();
  const server = await startSecuredNats(dir, { host: '127.0.0.1', port, storeDir: path.join(dir, 'store') });
  const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  return {
    url: server.url,
    dir,
    prefix,
    pid: server.pid,
    creds: (role, nodeId) => credsFile(dir, role, nodeId),
    connect: (role, nodeId, opts = {}) =>
      connectBus(
        {
          url: server.url,
          name: `test ${role} ${nodeId ?? ''}`,
          prefix,
          logRetentionHours: 1,
          logMaxMb: 64,
          role,
          nodeId,
          connectTimeoutMs: 2000,
          auth: { credsFile: opts.credsFile === null ? undefined : (opts.credsFile ?? credsFile(dir, role, nodeId)) },
        },
        log,
      ),
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
