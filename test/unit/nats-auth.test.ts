/**
 * The files `scalar nats-config` and `scalar creds` write: seeds only the
 * owner can read, an authorization block that lists exactly the current
 * credentials, and the permissions of each role as docs/security.md tables
 * them. (What the server then allows is tested on a real server in
 * test/integration/nats-auth.test.ts.)
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { credsFile, loadRegistry, mintCredential, renderAuthConf, revokeCredential, AuthDirError } from '../../src/cli/nats-auth.ts';
import { permissionsFor } from '../../src/wire/permissions.ts';
import { topology } from '../../src/wire/subjects.ts';

const BIN = new URL('../../bin/scalar.mjs', import.meta.url).pathname;
const dirs: string[] = [];
const fresh = () => {
  const d = mkdtempSync(path.join(tmpdir(), 'scalar-nats-auth-unit-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('credentials on disk', () => {
  it('a minted seed is readable by its owner only, and its public key is in auth.conf with its permissions', () => {
    const dir = fresh();
    const m = mintCredential(dir, 'scalar', 'agent', 'gpu-7');
    expect(m.file).toBe(credsFile(dir, 'agent', 'gpu-7'));
    expect(statSync(m.file).mode & 0o777).toBe(0o600);
    expect(readFileSync(m.file, 'utf8')).toMatch(/^SU[A-Z2-7]{56}\n$/);
    const conf = readFileSync(path.join(dir, 'auth.conf'), 'utf8');
    expect(conf).toContain(`nkey: "${m.publicKey}"`);
    expect(conf).toContain('"scalar.node.gpu-7.events"');
    expect(conf).not.toContain('$JS.API.>');
    expect(conf).not.toContain('"_INBOX.>"');
  });

  it('re-minting replaces the old key; revoking removes the key and deletes the seed', () => {
    const dir = fresh();
    const first = mintCredential(dir, 'scalar', 'agent', 'gpu-1');
    const second = mintCredential(dir, 'scalar', 'agent', 'gpu-1');
    expect(second.replaced).toBe(true);
    let conf = readFileSync(path.join(dir, 'auth.conf'), 'utf8');
    expect(conf).not.toContain(first.publicKey);
    expect(conf).toContain(second.publicKey);
    expect(revokeCredential(dir, 'scalar', 'agent', 'gpu-1')).toBe(true);
    conf = readFileSync(path.join(dir, 'auth.conf'), 'utf8');
    expect(conf).not.toContain(second.publicKey);
    expect(existsSync(second.file)).toBe(false);
    expect(revokeCredential(dir, 'scalar', 'agent', 'gpu-1')).toBe(false);
  });

  it('refuses a bad node id, and a directory written for another prefix', () => {
    const dir = fresh();
    expect(() => mintCredential(dir, 'scalar', 'agent', 'a.b')).toThrow(/invalid node id/);
    mintCredential(dir, 'scalar', 'api');
    expect(() => mintCredential(dir, 'other', 'api')).toThrow(AuthDirError);
    expect(() => revokeCredential(fresh(), 'scalar', 'api')).toThrow(/run `scalar nats-config/);
  });

  it('renders one user per credential, agents with their own subjects only', () => {
    const t = topology('scalar');
    const conf = renderAuthConf({
      prefix: 'scalar',
      users: [
        { role: 'agent', node_id: 'a', public_key: 'UA', created_at: 'x' },
        { role: 'agent', node_id: 'b', public_key: 'UB', created_at: 'x' },
      ],
    });
    expect(conf.match(/nkey:/g)).toHaveLength(2);
    const a = permissionsFor(t, 'agent', 'a');
    expect([...a.publish, ...a.subscribe].some((s) => s.includes('.b.') || s.endsWith('.b') || s.endsWith('node-b'))).toBe(false);
  });
});

describe('the permission table in docs/security.md', () => {
  it('lists every subject each role may publish and subscribe to, as the code grants them', () => {
    const doc = readFileSync(new URL('../../docs/security.md', import.meta.url), 'utf8');
    const t = topology('scalar');
    for (const [role, node] of [['api'], ['coordinator'], ['agent', '<id>']] as const) {
      const p = permissionsFor(t, role, node === '<id>' ? 'ID' : undefined);
      for (const s of [...p.publish, ...p.subscribe]) {
        let shown = s.replaceAll('node-ID', 'node-<id>').replaceAll('.ID.', '.<id>.').replace(/\.ID$/, '.<id>');
        // The coordinator's rights on its four streams are written once, for <STREAM>.
        if (role === 'coordinator') shown = shown.replace(/SCALAR_(JOBS|NODE_CMDS|NODE_EVENTS|LOGS)/, '<STREAM>');
        shown = '`' + shown + '`';
        expect(doc, `${role}: ${s}`).toContain(shown);
      }
    }
  });
});

describe('scalar nats-config and scalar creds', () => {
  const run = (args: string[]) => promisify(execFile)(process.execPath, [BIN, ...args], { env: { ...process.env, SCALAR_FROM_SOURCE: '1' } });

  it('writes a server config and a credential per role, then adds and revokes a node', { timeout: 60_000 }, async () => {
    const dir = fresh();
    const out = await run(['nats-config', '--dir', dir, '--node', 'gpu-1,gpu-2', '--listen', '127.0.0.1:14222']);
    expect(out.stdout).toContain(`NATS_CREDS=${path.relative(process.cwd(), path.join(dir, 'creds', 'node-gpu-2.nk'))}`);
    const server = readFileSync(path.join(dir, 'nats-server.conf'), 'utf8');
    expect(server).toContain('listen: "127.0.0.1:14222"');
    expect(server).toContain('include "auth.conf"');
    expect(server).not.toMatch(/^\s*(http|http_port|monitor_port)\s*:/m);
    expect(loadRegistry(dir)!.users.map((u) => u.node_id ?? u.role)).toEqual(['api', 'coordinator', 'gpu-1', 'gpu-2']);
    // The coordinator's signing key, whose public key the agents are told to accept.
    expect(statSync(path.join(dir, 'signing.nk')).mode & 0o777).toBe(0o600);
    const pub = (await run(['signing-key', 'show', path.join(dir, 'signing.nk')])).stdout.trim();
    expect(out.stdout).toContain(`SCALAR_COORDINATOR_KEYS=${pub}`);
    // Run again: every credential and the signing key are kept.
    const seeds = readFileSync(path.join(dir, 'creds', 'api.nk'), 'utf8');
    expect((await run(['nats-config', '--dir', dir])).stderr).toContain('every credential already existed');
    expect(readFileSync(path.join(dir, 'creds', 'api.nk'), 'utf8')).toBe(seeds);
    expect((await run(['signing-key', 'show', path.join(dir, 'signing.nk')])).stdout.trim()).toBe(pub);

    const created = await run(['creds', 'create', '--node', 'gpu-3', '--dir', dir]);
    expect(created.stdout.trim()).toBe(`NATS_CREDS=${path.join(dir, 'creds', 'node-gpu-3.nk')}`);
    expect(created.stderr).toMatch(/not reloaded: no .*nats-server\.pid/);
    await run(['creds', 'revoke', '--node', 'gpu-1', '--dir', dir]);
    expect(loadRegistry(dir)!.users.map((u) => u.node_id ?? u.role)).toEqual(['api', 'coordinator', 'gpu-2', 'gpu-3']);
    const missing = await run(['creds', 'revoke', '--node', 'gpu-1', '--dir', dir]).catch((e: { code: number; stderr: string }) => e);
    expect(missing).toMatchObject({ code: 1 });
    expect((missing as { stderr: string }).stderr).toContain('node gpu-1 has no credential');
  });
});
