/**
 * Signed node commands: defense in depth, after Slurm's job credential.
 * Whoever can publish on `<prefix>.node.<id>.cmd` could otherwise run code as
 * the agent's user; NATS permissions are the first wall, this is the second.
 * The coordinator signs every `run` and `kill` with an Ed25519 nkey of the
 * Cluster type (seed `SC…`, public key `C…`), and the agent executes only a
 * command signed by a key it was told to accept, for its own node, not yet
 * expired.
 *
 * What is signed (UTF-8, fields joined by "\n"):
 *
 *   scalar-cmd/1 · <node id> · <type> · <job_id> · <attempt> · <exp> · <sha256 hex of the body>
 *
 * The body is hashed as the bytes that travel, so no JSON canonicalisation is
 * needed: the receiver hashes exactly what it received. Type, job id and
 * attempt are read from that body, so the signature binds them; the node id
 * and the expiry travel in headers and are bound the same way.
 *
 * Headers: `Scalar-Key` (the signer's public key), `Scalar-Node`, `Scalar-Exp`
 * (unix ms) and `Scalar-Sig` (the 64-byte signature, base64url).
 *
 * The key format (seeds, public keys, their checksums) is the nkeys library's.
 * The signing itself is Node's built-in Ed25519 (OpenSSL), which gives the
 * very same signatures (Ed25519 is deterministic; the unit test checks it
 * against nkeys both ways). nkeys signs through tweetnacl in plain
 * JavaScript: about 10 ms per signature and per check on the test machine,
 * against 44 µs and 125 µs here (bench/signing.ts, docs/performance.md). The
 * coordinator signs every command on its event loop, and one process may
 * host a hundred simulated agents.
 */
import { createHash, createPrivateKey, createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createCluster, fromSeed, Prefix } from '@nats-io/nkeys';
// Not in the package's index, but the library's own codec: decodes a key to its raw bytes after checking its prefix and CRC.
import { Codec } from '@nats-io/nkeys/lib/codec.js';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';

export const SIGNATURE_VERSION = 'scalar-cmd/1';
export const SIGNING_HEADERS = { key: 'Scalar-Key', node: 'Scalar-Node', exp: 'Scalar-Exp', sig: 'Scalar-Sig' } as const;

/** Why a command was refused, as the agent counts and logs it. */
export const COMMAND_REFUSALS = ['unsigned', 'unknown_key', 'bad_signature', 'wrong_node', 'expired', 'malformed'] as const;
export type CommandRefusal = (typeof COMMAND_REFUSALS)[number];

export type VerifyResult =
  | { ok: true; expMs: number; key: string }
  /** `expMs` is set when the headers parsed; with `expired`, the signature was good. */
  | { ok: false; reason: CommandRefusal; detail: string; expMs?: number };

/** What of the command the signature binds besides the body's hash (the body holds them too). */
export interface SignedFields {
  type: string;
  job_id: string;
  attempt: number;
}

/** A seed file or a key list that cannot be used; the message names the variable and the path, on one line. */
export class SigningKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SigningKeyError';
  }
}

const encoder = new TextEncoder();
// DER wrappers of a raw Ed25519 key (RFC 8410): PKCS#8 around the 32-byte seed, SPKI around the 32-byte public key.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function signedBytes(node: string, f: SignedFields, exp: number, body: Uint8Array): Buffer {
  const digest = createHash('sha256').update(body).digest('hex');
  return Buffer.from(`${SIGNATURE_VERSION}\n${node}\n${f.type}\n${f.job_id}\n${f.attempt}\n${exp}\n${digest}`, 'utf8');
}

/** The raw 32 bytes of a cluster public key (`C…`); throws SigningKeyError naming the key when it is not one. */
function rawPublicKey(key: string): Uint8Array {
  try {
    return Codec.decode(Prefix.Cluster, encoder.encode(key));
  } catch (err) {
    throw new SigningKeyError(`${JSON.stringify(key)} is not a cluster nkey public key (C…, 56 characters): ${(err as Error).message}`);
  }
}

/** Signs commands with the coordinator's cluster nkey. */
export class CommandSigner {
  /** The public key (`C…`) agents list in SCALAR_COORDINATOR_KEYS. */
  readonly publicKey: string;
  private readonly key: KeyObject;

  private constructor(
    seed: string,
    /** How long a signature is valid: SCALAR_COMMAND_TTL_SEC × 1000. */
    readonly ttlMs: number,
  ) {
    const bytes = encoder.encode(seed);
    let decoded;
    try {
      decoded = Codec.decodeSeed(bytes);
    } catch (err) {
      throw new SigningKeyError(`not an nkey seed: ${(err as Error).message}`);
    }
    if (decoded.prefix !== Prefix.Cluster) throw new SigningKeyError('not a cluster nkey seed (it must start with SC)');
    this.key = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, decoded.buf]), format: 'der', type: 'pkcs8' });
    this.publicKey = fromSeed(bytes).getPublicKey();
  }

  /** From a seed (`SC…`); throws SigningKeyError when it is not a cluster seed. */
  static fromSeed(seed: string, ttlMs: number): CommandSigner {
    if (!(ttlMs > 0)) throw new Error('ttlMs must be positive');
    return new CommandSigner(seed.trim(), ttlMs);
  }

  /** The headers that make `body` (the exact bytes published) a command for `nodeId`, valid until now + ttl. */
  sign(nodeId: string, cmd: SignedFields, body: Uint8Array, nowMs: number): MsgHdrs {
    const exp = nowMs + this.ttlMs;
    const sig = edSign(null, signedBytes(nodeId, cmd, exp, body), this.key);
    const h = natsHeaders();
    h.set(SIGNING_HEADERS.key, this.publicKey);
    h.set(SIGNING_HEADERS.node, nodeId);
    h.set(SIGNING_HEADERS.exp, String(exp));
    h.set(SIGNING_HEADERS.sig, sig.toString('base64url'));
    return h;
  }
}

/** Checks commands against the coordinator keys an agent accepts (two while a key is being rotated). */
export class CommandVerifier {
  readonly keys: readonly string[];
  private readonly byKey = new Map<string, KeyObject>();

  constructor(publicKeys: readonly string[]) {
    if (publicKeys.length === 0) throw new SigningKeyError('no coordinator public key to accept');
    for (const k of publicKeys) {
      this.byKey.set(k, createPublicKey({ key: Buffer.concat([SPKI_PREFIX, rawPublicKey(k)]), format: 'der', type: 'spki' }));
    }
    this.keys = Object.freeze([...this.byKey.keys()]);
  }

  /**
   * Whether `body`, received with `hdrs` on this node's command subject,
   * may be executed by node `nodeId` at `nowMs`. The checks go from what
   * needs no key to the signature, and only then to what the signature
   * vouches for (node, expiry): `wrong_node` and `expired` mean the signature
   * itself is good. Never rejects.
   *
   * The Ed25519 check runs on libuv's thread pool rather than the event loop
   * (about 125 µs each here, bench/signing.ts): one process may host a
   * hundred simulated agents (`scalar dev`, the capacity actor's blocks,
   * bench/agents-host.ts), whose checks would otherwise queue on one thread.
   */
  async verify(nodeId: string, hdrs: MsgHdrs | undefined, body: Uint8Array, nowMs: number): Promise<VerifyResult> {
    const pre = this.precheck(hdrs, body);
    if (!pre.ok) return pre.result;
    const { key, node, expMs, sig, pub, message } = pre;
    const good = await new Promise<boolean>((resolve) => edVerify(null, message, pub, sig, (err, ok) => resolve(!err && ok)));
    if (!good) return { ok: false, reason: 'bad_signature', detail: `the signature does not match the command (key ${key})`, expMs };
    if (node !== nodeId) return { ok: false, reason: 'wrong_node', detail: `signed for node ${node}`, expMs };
    if (expMs <= nowMs) {
      return { ok: false, reason: 'expired', detail: `valid until ${new Date(expMs).toISOString()}, ${nowMs - expMs} ms before this node's clock`, expMs };
    }
    return { ok: true, expMs, key };
  }

  /** Everything but the signature itself: the headers, the body's fields and the key. */
  private precheck(
    hdrs: MsgHdrs | undefined,
    body: Uint8Array,
  ): { ok: false; result: VerifyResult } | { ok: true; key: string; node: string; expMs: number; sig: Buffer; pub: KeyObject; message: Buffer } {
    const fail = (reason: CommandRefusal, detail: string, expMs?: number) => ({ ok: false as const, result: { ok: false as const, reason, detail, expMs } });
    const get = (name: string): string => (hdrs?.has(name) ? hdrs.get(name) : '');
    const key = get(SIGNING_HEADERS.key);
    const node = get(SIGNING_HEADERS.node);
    const expRaw = get(SIGNING_HEADERS.exp);
    const sigRaw = get(SIGNING_HEADERS.sig);
    if (!key && !sigRaw) return fail('unsigned', 'no Scalar-Key or Scalar-Sig header');
    const missing = Object.values(SIGNING_HEADERS).filter((n) => !get(n));
    if (missing.length) return fail('malformed', `missing header ${missing.join(', ')}`);
    if (!/^\d{1,16}$/.test(expRaw)) return fail('malformed', `Scalar-Exp ${JSON.stringify(expRaw.slice(0, 40))} is not unix milliseconds`);
    const expMs = Number(expRaw);
    if (/[\n\r]/.test(node)) return fail('malformed', 'Scalar-Node holds a line break', expMs);
    const sig = Buffer.from(sigRaw, 'base64url');
    if (sig.length !== 64 || sig.toString('base64url') !== sigRaw) return fail('malformed', 'Scalar-Sig is not a base64url Ed25519 signature', expMs);
    const fields = commandFields(body);
    if (!fields) return fail('malformed', 'the body has no type, job_id and attempt', expMs);
    const pub = this.byKey.get(key);
    if (!pub) return fail('unknown_key', `signed by ${key}, which is not in the accepted keys`, expMs);
    return { ok: true, key, node, expMs, sig, pub, message: signedBytes(node, fields, expMs, body) };
  }
}

/** type, job_id and attempt of a command body, or null when it does not have them (as strings, and a safe integer). */
function commandFields(body: Uint8Array): SignedFields | null {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch {
    return null;
  }
  if (!v || typeof v !== 'object') return null;
  const { type, job_id, attempt } = v as Record<string, unknown>;
  if (typeof type !== 'string' || typeof job_id !== 'string' || !Number.isSafeInteger(attempt)) return null;
  if (/[\n\r]/.test(type) || /[\n\r]/.test(job_id)) return null;
  return { type, job_id, attempt: attempt as number };
}

/** A fresh cluster seed (`SC…`). */
export function generateSeed(): string {
  return new TextDecoder().decode(createCluster().getSeed());
}

/**
 * Reads the coordinator's seed from `path` (the value of `variable`). The
 * file holds the seed on one line. Throws SigningKeyError with one line
 * naming the variable and the path.
 */
export async function loadSigner(path: string | undefined, ttlMs: number, variable = 'SCALAR_SIGNING_KEY_FILE'): Promise<CommandSigner> {
  if (!path) {
    throw new SigningKeyError(
      `${variable} is not set: the coordinator signs every command it sends to agents with an nkey seed; create one with \`scalar signing-key create FILE\` and set ${variable}=FILE`,
    );
  }
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new SigningKeyError(`${variable}=${path}: cannot read the signing key (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    return CommandSigner.fromSeed(text, ttlMs);
  } catch (err) {
    if (err instanceof SigningKeyError) throw new SigningKeyError(`${variable}=${path}: ${err.message}`);
    throw err;
  }
}

/**
 * Writes a fresh seed to `path` (mode 0600; its folder is created, 0700) and
 * returns its public key. Refuses to overwrite: a key that exists may be the
 * one every agent trusts.
 */
export async function createSeedFile(path: string): Promise<{ publicKey: string }> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const seed = generateSeed();
  let fh;
  try {
    fh = await open(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new SigningKeyError(`${path} already exists; refusing to overwrite a signing key`);
    throw err;
  }
  try {
    await fh.writeFile(seed + '\n', 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { publicKey: CommandSigner.fromSeed(seed, 1).publicKey };
}

/**
 * The accepted coordinator keys from a comma-separated list (the value of
 * `variable`). Throws SigningKeyError with one line naming the variable and
 * the first bad key.
 */
export function parsePublicKeys(raw: string | undefined, variable = 'SCALAR_COORDINATOR_KEYS'): string[] {
  const keys = (raw ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k !== '');
  if (keys.length === 0) {
    throw new SigningKeyError(
      `${variable} is not set: list the coordinator's public signing key (C…; \`scalar signing-key show FILE\` prints it), comma-separated, two while rotating`,
    );
  }
  for (const k of keys) {
    try {
      rawPublicKey(k);
    } catch (err) {
      throw new SigningKeyError(`${variable}: ${(err as Error).message}`);
    }
  }
  return keys;
}
