/**
 * `scalar nats-config` and `scalar creds`: the credentials of an
 * authenticated NATS server for a real cluster (the files are described in
 * nats-auth.ts). Only the operator who runs NATS uses these; they touch no
 * database and no running component, except that they ask the local
 * nats-server to reload its config (SIGHUP) when its pid file is there.
 *
 * What they print on stdout is what to do next; what they did goes to stderr.
 */
import path from 'node:path';
import { existsSync } from 'node:fs';
import type { Role } from '../wire/permissions.ts';
import { createSeedFile, loadSigner, SigningKeyError } from '../wire/signing.ts';
import { loadConfig } from './common.ts';
import {
  AuthDirError,
  credsFile,
  loadRegistry,
  ensureCredentials,
  mintCredential,
  openRegistry,
  reloadServer,
  revokeCredential,
  writeServerConf,
  type ReloadResult,
} from './nats-auth.ts';

export const DEFAULT_AUTH_DIR = 'scalar-nats';

export interface NatsConfigOptions {
  dir: string;
  node: string[];
  listen: string;
  store?: string;
}

export interface CredsOptions {
  dir: string;
  node?: string;
  role?: string;
}

function fail(message: string): never {
  process.stderr.write(`scalar: ${message}\n`);
  process.exit(1);
}

function guarded(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    if (err instanceof AuthDirError) fail(err.message);
    throw err;
  }
}

function describeReload(r: ReloadResult, dir: string): string {
  return r.reloaded
    ? `asked the nats-server (pid ${r.pid}) to reload its config: the change is in effect`
    : `the server was not reloaded: ${r.why}. On the NATS host run: nats-server --signal reload=<pid> (or kill -HUP it), with ${path.join(dir, 'auth.conf')} copied there`;
}

function whoOf(opts: CredsOptions): { role: Role; nodeId?: string } {
  if (opts.node && opts.role && opts.role !== 'agent') fail('give either --node ID (an agent) or --role api|coordinator, not both');
  if (opts.node) return { role: 'agent', nodeId: opts.node };
  if (opts.role === 'api' || opts.role === 'coordinator') return { role: opts.role };
  return fail('which credential? give --node ID for an agent, or --role api|coordinator');
}

export async function runNatsConfig(opts: NatsConfigOptions): Promise<void> {
  const cfg = loadConfig();
  const dir = path.resolve(opts.dir);
  const nodes = opts.node.flatMap((n) => n.split(',')).map((n) => n.trim()).filter(Boolean);
  // The coordinator's command-signing key, kept when it exists (docs/security.md, "Signed commands").
  const signingFile = path.join(dir, 'signing.nk');
  let signingKey: string;
  try {
    signingKey = existsSync(signingFile) ? (await loadSigner(signingFile, 1, 'FILE')).publicKey : (await createSeedFile(signingFile)).publicKey;
  } catch (err) {
    if (err instanceof SigningKeyError) fail(err.message);
    throw err;
  }
  guarded(() => {
    const minted = ensureCredentials(dir, cfg.SCALAR_NATS_PREFIX, nodes);
    const conf = writeServerConf(dir, { listen: opts.listen, storeDir: path.resolve(opts.store ?? path.join(dir, 'jetstream')) });
    process.stderr.write(minted.length > 0 ? `minted credentials for: ${minted.join(', ')}\n` : 'every credential already existed; kept them\n');
    const rel = (f: string) => path.relative(process.cwd(), f) || f;
    const lines = [
      `NATS server config: ${rel(conf)} (includes ${rel(path.join(dir, 'auth.conf'))}; no anonymous access, no monitoring port)`,
      `  start it:   nats-server -c ${rel(conf)}`,
      '',
      'Give each component its own credential (mode 0600; copy each only to the host that runs it):',
      `  scalar api:          NATS_CREDS=${rel(credsFile(dir, 'api'))}`,
      `  scalar coordinator:  NATS_CREDS=${rel(credsFile(dir, 'coordinator'))} SCALAR_SIGNING_KEY_FILE=${rel(signingFile)}`,
      ...(loadRegistry(dir)?.users ?? [])
        .filter((u) => u.role === 'agent')
        .map((u) => `  scalar agent --node-id ${u.node_id}:  NATS_CREDS=${rel(credsFile(dir, 'agent', u.node_id))}`),
      `  every agent also:    SCALAR_COORDINATOR_KEYS=${signingKey}   (the coordinator's public key; scalar signing-key show ${rel(signingFile)})`,
      '',
      'Add a node later: scalar creds create --node <id> --dir ' + rel(dir) + '    Revoke one: scalar creds revoke --node <id> --dir ' + rel(dir),
      'Without TLS, commands (with their env), events and logs cross the network in the clear: set up TLS for hosts on other networks (docs/security.md).',
      '',
    ];
    process.stdout.write(lines.join('\n'));
  });
}

export function runCredsCreate(opts: CredsOptions): void {
  const cfg = loadConfig();
  const dir = path.resolve(opts.dir);
  const who = whoOf(opts);
  guarded(() => {
    openRegistry(dir, cfg.SCALAR_NATS_PREFIX, false); // the directory must have been set up by nats-config
    const m = mintCredential(dir, cfg.SCALAR_NATS_PREFIX, who.role, who.nodeId);
    const name = who.role === 'agent' ? `node ${who.nodeId}` : who.role;
    process.stderr.write(`${m.replaced ? 'replaced the credential of' : 'minted a credential for'} ${name} (public key ${m.publicKey})\n`);
    process.stderr.write(describeReload(reloadServer(dir), dir) + '\n');
    process.stdout.write(`NATS_CREDS=${m.file}\n`);
  });
}

export function runCredsRevoke(opts: CredsOptions): void {
  const cfg = loadConfig();
  const dir = path.resolve(opts.dir);
  const who = whoOf(opts);
  guarded(() => {
    const name = who.role === 'agent' ? `node ${who.nodeId}` : who.role;
    if (!revokeCredential(dir, cfg.SCALAR_NATS_PREFIX, who.role, who.nodeId)) fail(`${name} has no credential in ${dir}`);
    process.stderr.write(`revoked the credential of ${name}: its key left auth.conf and its seed file was deleted\n`);
    const r = reloadServer(dir);
    process.stderr.write(describeReload(r, dir) + (r.reloaded ? '; its connections are closed and it cannot connect again\n' : '\n'));
  });
}

export function runCredsList(opts: { dir: string }): void {
  const cfg = loadConfig();
  const dir = path.resolve(opts.dir);
  guarded(() => {
    const reg = openRegistry(dir, cfg.SCALAR_NATS_PREFIX, false);
    const rows = reg.users.map((u) => [u.role, u.node_id ?? '-', u.public_key, u.created_at]);
    const widths = [0, 1, 2, 3].map((i) => Math.max(...[['ROLE', 'NODE', 'PUBLIC KEY', 'CREATED'], ...rows].map((r) => r[i]!.length)));
    for (const r of [['ROLE', 'NODE', 'PUBLIC KEY', 'CREATED'], ...rows]) process.stdout.write(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd() + '\n');
  });
}
