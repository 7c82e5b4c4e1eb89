/**
 * The NATS of `scalar dev`.
 *
 * NATS_URL unset (a newcomer's `npm start`): a nats-server of its own, on
 * loopback, that demands credentials. They are minted once under
 * SCALAR_DATA_DIR/nats-auth (seeds mode 0600), one per role: the API, the
 * coordinator and each dev node, with the permissions a real cluster has. It
 * never joins a server that happens to answer on 4222: development machines
 * often run one without authentication, and anyone on the machine could then
 * run commands on the dev agents. It listens on 4223 when that port is free,
 * otherwise on a port the OS picks; the banner prints which.
 *
 * NATS_URL set: that server, with NATS_CREDS (or NATS_USER) if given, and one
 * connection for every role (a single credential cannot be three roles). The
 * connection warns at start if that server takes clients without credentials.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/index.ts';
import type { Role } from '../wire/permissions.ts';
import { credsFile, ensureCredentials } from './nats-auth.ts';
import { answers, findNatsServer, freePort, NatsMissingError, startSecuredNats } from './nats-server.ts';

export interface DevNats {
  /** One connection for every role (NATS_URL was given). */
  shared: boolean;
  /** The config variables a role's connection uses. */
  env(role: Role, nodeId?: string): Pick<Config, 'NATS_URL' | 'NATS_CREDS'>;
  /** For the banner. */
  describe: string;
  stop(): Promise<void>;
}

export const DEV_NATS_PORT = 4223;

export async function devNats(cfg: Config, log: Logger, nodeIds: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<DevNats> {
  if (env.NATS_URL) {
    return {
      shared: true,
      env: () => ({ NATS_URL: cfg.NATS_URL, NATS_CREDS: cfg.NATS_CREDS }),
      describe: `${cfg.NATS_URL} (NATS_URL${cfg.NATS_CREDS ? ', NATS_CREDS' : ''})`,
      stop: async () => undefined,
    };
  }
  const bin = findNatsServer();
  if (!bin) throw new NatsMissingError(`nats://127.0.0.1:${DEV_NATS_PORT}`, true);
  const dir = path.resolve(cfg.SCALAR_DATA_DIR, 'nats-auth');
  ensureCredentials(dir, cfg.SCALAR_NATS_PREFIX, nodeIds);
  const host = '127.0.0.1';
  const port = (await answers(host, DEV_NATS_PORT, 300)) ? await freePort(host) : DEV_NATS_PORT;
  const store = path.resolve(cfg.SCALAR_DATA_DIR, 'nats');
  const server = await startSecuredNats(dir, { host, port, storeDir: store, bin });
  log.info({ url: server.url, credentials: dir, store }, 'started a nats-server that demands credentials');
  return {
    shared: false,
    env: (role, nodeId) => ({ NATS_URL: server.url, NATS_CREDS: credsFile(dir, role, nodeId) }),
    describe: `${server.url} (started here; credentials per role in ${path.relative(process.cwd(), dir) || dir}, store in ${path.relative(process.cwd(), store) || store})`,
    stop: () => server.stop(),
  };
}
