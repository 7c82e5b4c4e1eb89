/**
 * Signed node commands (src/wire/signing.ts): what the agent's check accepts
 * and refuses, byte by byte. The integration side (a real agent that
 * launches nothing it should not) is test/integration/command-signing.test.ts.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCluster, createUser, fromPublic, fromSeed } from '@nats-io/nkeys';
import { headers, type MsgHdrs } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeJson, type RunCommand } from '../../src/wire/messages.ts';
import {
  CommandSigner,
  CommandVerifier,
  createSeedFile,
  generateSeed,
  loadSigner,
  parsePublicKeys,
  SIGNING_HEADERS,
  SigningKeyError,
} from '../../src/wire/signing.ts';
import { aRunCommand } from '../helpers/signing.ts';

const TTL = 600_000;
const NOW = 1_750_000_000_000;
const seed = generateSeed();
const signer = CommandSigner.fromSeed(seed, TTL);
const other = CommandSigner.fromSeed(generateSeed(), TTL);
const verifier = new CommandVerifier([signer.publicKey]);

const runCmd = (over: Partial<RunCommand> = {}): RunCommand =>
  aRunCommand({ image: 'img', command: ['sh', '-c', 'echo hi'], env: { A: 'b' }, expected_duration_sec: 60, ...over });

function signed(cmd = runCmd(), node = 'n1', by = signer, now = NOW): { cmd: RunCommand; body: Uint8Array; h: MsgHdrs } {
  const body = encodeJson(cmd);
  return { cmd, body, h: by.sign(node, cmd, body, now) };
}

/** A copy of `h` with `name` set to `value` (or removed when undefined). */
function withHeader(h: MsgHdrs, name: string, value: string | undefined): MsgHdrs {
  const out = headers();
  for (const k of h.keys()) if (k !== name) out.set(k, h.get(k));
  if (value !== undefined) out.set(name, value);
  return out;
}

describe('command signing', async () => {
  it('uses a cluster nkey: seed SC…, public key C…', async () => {
    expect(seed).toMatch(/^SC[A-Z2-7]{56}$/);
    expect(signer.publicKey).toMatch(/^C[A-Z2-7]{55}$/);
    expect(signer.publicKey).toBe(fromSeed(new TextEncoder().encode(seed)).getPublicKey());
  });

  it('round trip: a signed command verifies, with its expiry now + TTL', async () => {
    const { body, h } = signed();
    expect(h.get(SIGNING_HEADERS.key)).toBe(signer.publicKey);
    expect(h.get(SIGNING_HEADERS.node)).toBe('n1');
    expect(h.get(SIGNING_HEADERS.exp)).toBe(String(NOW + TTL));
    expect(h.get(SIGNING_HEADERS.sig)).toMatch(/^[A-Za-z0-9_-]{86}$/);
    await expect(verifier.verify('n1', h, body, NOW)).resolves.toEqual({ ok: true, expMs: NOW + TTL, key: signer.publicKey });
    await expect(verifier.verify('n1', h, body, NOW + TTL - 1)).resolves.toMatchObject({ ok: true });
  });

  it('gives the signatures nkeys gives, and nkeys accepts ours (the same Ed25519)', async () => {
    const kp = createCluster();
    const s = CommandSigner.fromSeed(new TextDecoder().decode(kp.getSeed()), TTL);
    const { body, h } = signed(runCmd(), 'n1', s);
    const { job_id } = JSON.parse(new TextDecoder().decode(body)) as RunCommand;
    const message = Buffer.from(`scalar-cmd/1\nn1\nrun\n${job_id}\n1\n${NOW + TTL}\n${createHash('sha256').update(body).digest('hex')}`);
    const sig = Buffer.from(h.get(SIGNING_HEADERS.sig), 'base64url');
    expect(fromPublic(s.publicKey).verify(message, sig)).toBe(true);
    expect(Buffer.from(kp.sign(message)).equals(sig)).toBe(true);
  });

  it('binds the body: any change to the bytes is a bad signature', async () => {
    const { cmd, h } = signed();
    for (const changed of [
      { ...cmd, command: ['sh', '-c', 'touch /tmp/pwned'] },
      { ...cmd, attempt: 2 },
      { ...cmd, job_id: randomUUID() },
      { ...cmd, type: 'kill', grace_sec: 0, reason: 'x' },
      { ...cmd, env: { A: 'c' } },
    ]) {
      await expect(verifier.verify('n1', h, encodeJson(changed), NOW)).resolves.toMatchObject({ ok: false, reason: 'bad_signature' });
    }
    // The same JSON with another spacing is other bytes: not re-serialised, hashed as received.
    await expect(verifier.verify('n1', h, new TextEncoder().encode(JSON.stringify(cmd, null, 1)), NOW)).resolves.toMatchObject({ ok: false, reason: 'bad_signature' });
  });

  it('binds the node: a command signed for n1 is wrong_node on n2, and a rewritten node header is a bad signature', async () => {
    const { body, h } = signed();
    await expect(verifier.verify('n2', h, body, NOW)).resolves.toMatchObject({ ok: false, reason: 'wrong_node', detail: 'signed for node n1' });
    await expect(verifier.verify('n2', withHeader(h, SIGNING_HEADERS.node, 'n2'), body, NOW)).resolves.toMatchObject({ ok: false, reason: 'bad_signature' });
  });

  it('binds the expiry: a later Scalar-Exp is a bad signature; past it, the command is expired', async () => {
    const { body, h } = signed();
    await expect(verifier.verify('n1', withHeader(h, SIGNING_HEADERS.exp, String(NOW + 10 * TTL)), body, NOW)).resolves.toMatchObject({ ok: false, reason: 'bad_signature' });
    await expect(verifier.verify('n1', h, body, NOW + TTL)).resolves.toMatchObject({ ok: false, reason: 'expired', expMs: NOW + TTL });
    await expect(verifier.verify('n1', h, body, NOW + TTL + 5000)).resolves.toMatchObject({ ok: false, reason: 'expired' });
  });

  it('refuses another key: unknown when not listed, bad signature when the key header is swapped for a listed one', async () => {
    const { body, h } = signed(runCmd(), 'n1', other);
    await expect(verifier.verify('n1', h, body, NOW)).resolves.toMatchObject({ ok: false, reason: 'unknown_key' });
    await expect(verifier.verify('n1', withHeader(h, SIGNING_HEADERS.key, signer.publicKey), body, NOW)).resolves.toMatchObject({ ok: false, reason: 'bad_signature' });
  });

  it('accepts either of two keys while a key is rotated', async () => {
    const both = new CommandVerifier([signer.publicKey, other.publicKey]);
    for (const by of [signer, other]) {
      const { body, h } = signed(runCmd(), 'n1', by);
      await expect(both.verify('n1', h, body, NOW)).resolves.toMatchObject({ ok: true, key: by.publicKey });
    }
  });

  it('unsigned: no headers at all, or none of the key and signature', async () => {
    const body = encodeJson(runCmd());
    await expect(verifier.verify('n1', undefined, body, NOW)).resolves.toMatchObject({ ok: false, reason: 'unsigned' });
    await expect(verifier.verify('n1', headers(), body, NOW)).resolves.toMatchObject({ ok: false, reason: 'unsigned' });
  });

  it.each([
    ['a missing signature', SIGNING_HEADERS.sig, undefined],
    ['a missing node', SIGNING_HEADERS.node, undefined],
    ['a missing expiry', SIGNING_HEADERS.exp, undefined],
    ['an expiry that is not a number', SIGNING_HEADERS.exp, 'soon'],
    ['a negative expiry', SIGNING_HEADERS.exp, '-1'],
    ['a signature that is not base64url', SIGNING_HEADERS.sig, 'not/base64+'],
    ['a signature of the wrong length', SIGNING_HEADERS.sig, Buffer.alloc(32).toString('base64url')],
  ])('malformed: %s', async (_what, name, value) => {
    const { body, h } = signed();
    await expect(verifier.verify('n1', withHeader(h, name, value), body, NOW)).resolves.toMatchObject({ ok: false, reason: 'malformed' });
  });

  it('malformed: a body without type, job_id and attempt', async () => {
    const { h } = signed();
    for (const b of ['not json', '[]', '{"type":"run","job_id":"x"}', '{"type":"run","job_id":"x","attempt":"1"}']) {
      await expect(verifier.verify('n1', h, new TextEncoder().encode(b), NOW)).resolves.toMatchObject({ ok: false, reason: 'malformed' });
    }
  });
});

describe('signing keys: files and lists', async () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'scalar-signing-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates a seed file with mode 0600, refuses to overwrite it, and loads it', async () => {
    const path = join(dir, 'sub', 'coordinator.nk');
    const { publicKey } = await createSeedFile(path);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await readFile(path, 'utf8')).trim()).toMatch(/^SC/);
    await expect(createSeedFile(path)).rejects.toThrow(/already exists; refusing to overwrite/);
    const loaded = await loadSigner(path, TTL);
    expect(loaded.publicKey).toBe(publicKey);
  });

  it('names the variable and the path when the seed file is unset, missing or not a cluster seed', async () => {
    await expect(loadSigner(undefined, TTL)).rejects.toThrow(/^SCALAR_SIGNING_KEY_FILE is not set/);
    const missing = join(dir, 'nope.nk');
    await expect(loadSigner(missing, TTL)).rejects.toThrow(`SCALAR_SIGNING_KEY_FILE=${missing}: cannot read the signing key (ENOENT)`);
    const junk = join(dir, 'junk.nk');
    await writeFile(junk, 'hello\n');
    await expect(loadSigner(junk, TTL)).rejects.toThrow(new RegExp(`^SCALAR_SIGNING_KEY_FILE=${junk}: not an nkey seed`));
    const user = join(dir, 'user.nk');
    await writeFile(user, new TextDecoder().decode(createUser().getSeed()) + '\n');
    await expect(loadSigner(user, TTL)).rejects.toThrow(/not a cluster nkey seed \(it must start with SC\)/);
    await expect(loadSigner(user, TTL)).rejects.toBeInstanceOf(SigningKeyError);
  });

  it('parses a comma-separated key list and names a bad key', async () => {
    expect(parsePublicKeys(` ${signer.publicKey} , ${other.publicKey},`)).toEqual([signer.publicKey, other.publicKey]);
    expect(() => parsePublicKeys(undefined)).toThrow(/^SCALAR_COORDINATOR_KEYS is not set/);
    expect(() => parsePublicKeys(' , ')).toThrow(/^SCALAR_COORDINATOR_KEYS is not set/);
    const user = createUser().getPublicKey();
    expect(() => parsePublicKeys(`${signer.publicKey},${user}`)).toThrow(`SCALAR_COORDINATOR_KEYS: "${user}" is not a cluster nkey public key`);
    const typo = signer.publicKey.slice(0, -1) + (signer.publicKey.endsWith('A') ? 'B' : 'A');
    expect(() => parsePublicKeys(typo)).toThrow(/checksum|not a cluster nkey/i);
    expect(() => new CommandVerifier([])).toThrow(SigningKeyError);
  });
});
