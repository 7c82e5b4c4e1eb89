/**
 * The cost of signed node commands (src/wire/signing.ts): what the
 * coordinator adds to each command it publishes (sign) and what the agent
 * adds to each it takes (verify), against what nkeys' own tweetnacl path
 * would cost.
 *
 *   npm run bench:signing
 *   BENCH_OPS=20000 BENCH_ROUNDS=9 BENCH_CONCURRENCY=16 npm run bench:signing
 *
 * The command is a realistic `run`: a gang member's env of about 2 KB (the
 * job's variables plus SCALAR_NODE_RANK, SCALAR_NODE_COUNT and
 * SCALAR_MASTER_ADDR), a Python command line and an image name; its body is
 * encoded once, as natsNodeLink does, and each sign hashes those bytes and
 * builds the headers. Each of BENCH_ROUNDS rounds times BENCH_OPS operations;
 * the median round gives µs per op and ops/s. Prints a table line and a JSON
 * line per operation.
 */
import { randomUUID } from 'node:crypto';
import { fromPublic, fromSeed } from '@nats-io/nkeys';
import { encodeJson, type RunCommand } from '../src/wire/messages.ts';
import { CommandSigner, CommandVerifier, generateSeed, SIGNING_HEADERS } from '../src/wire/signing.ts';

const OPS = Number(process.env.BENCH_OPS ?? 5000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const NKEYS_OPS = Number(process.env.BENCH_NKEYS_OPS ?? 50);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);

const env: Record<string, string> = { SCALAR_NODE_RANK: '3', SCALAR_NODE_COUNT: '8', SCALAR_MASTER_ADDR: 'gpu-host-017.cluster.internal' };
for (let i = 0; JSON.stringify(env).length < 2048; i++) env[`TRAIN_OPTION_${i}`] = `value-${i}-${'x'.repeat(40)}`;
const cmd: RunCommand = {
  type: 'run',
  job_id: randomUUID(),
  attempt: 1,
  gpu_indices: [0, 1, 2, 3, 4, 5, 6, 7],
  image: 'nvcr.io/nvidia/pytorch:24.05-py3',
  command: ['torchrun', '--nproc-per-node', '8', 'train.py', '--config', 'configs/llama-8b.yaml', '--resume'],
  env,
  cpu_cores: 96,
  ram_gb: 1024,
  expected_duration_sec: 86_400,
};
const body = encodeJson(cmd);
const seed = generateSeed();
const signer = CommandSigner.fromSeed(seed, 600_000);
const verifier = new CommandVerifier([signer.publicKey]);
const node = 'gpu-host-017';
const now = Date.now();
const headers = signer.sign(node, cmd, body, now);

/** µs per op of each round. */
function rounds(ops: number, fn: () => void): number[] {
  for (let i = 0; i < Math.min(ops, 500); i++) fn(); // JIT warm-up
  const out: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < ops; i++) fn();
    out.push(Number(process.hrtime.bigint() - t0) / 1000 / ops);
  }
  return out;
}

/** µs per op of each round, `concurrency` ops in flight at a time. */
async function roundsAsync(ops: number, concurrency: number, fn: () => Promise<void>): Promise<number[]> {
  const batch = async (n: number) => {
    let next = 0;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next++ < n) await fn();
    }));
  };
  await batch(Math.min(ops, 500)); // JIT warm-up
  const out: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    await batch(ops);
    out.push(Number(process.hrtime.bigint() - t0) / 1000 / ops);
  }
  return out;
}

function report(op: string, us: number[], ops: number): void {
  const sorted = [...us].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  const b = { op, body_bytes: body.length, ops_per_round: ops, rounds: ROUNDS, median_us: +median.toFixed(1), ops_per_sec: Math.round(1e6 / median), min_us: +sorted[0]!.toFixed(1), max_us: +sorted.at(-1)!.toFixed(1) };
  console.log(`${op.padEnd(26)} ${b.median_us.toFixed(1).padStart(9)} µs/op   ${String(b.ops_per_sec).padStart(7)} ops/s   (min ${b.min_us}, max ${b.max_us})`);
  console.log(JSON.stringify({ bench: 'signing', ...b }));
}

console.log(`signing bench: a run command of ${body.length} bytes (env ${JSON.stringify(env).length} bytes), median of ${ROUNDS} rounds, node ${process.version}`);
report('sign', rounds(OPS, () => signer.sign(node, cmd, body, now)), OPS);
// verify is asynchronous (the Ed25519 check runs on libuv's thread pool): one at a time, awaited, gives µs per check;
// BENCH_CONCURRENCY at once gives what a process hosting many agents gets through.
report('verify (one at a time)', await roundsAsync(OPS, 1, async () => {
  if (!(await verifier.verify(node, headers, body, now)).ok) throw new Error('verify failed');
}), OPS);
report(`verify (${CONCURRENCY} at once)`, await roundsAsync(OPS, CONCURRENCY, async () => {
  if (!(await verifier.verify(node, headers, body, now)).ok) throw new Error('verify failed');
}), OPS);
report('encode+sign', rounds(OPS, () => signer.sign(node, cmd, encodeJson(cmd), now)), OPS);

// nkeys' own sign/verify (tweetnacl, plain JavaScript), for comparison: why signing.ts signs with node:crypto.
const kp = fromSeed(new TextEncoder().encode(seed));
const pub = fromPublic(signer.publicKey);
// The size of what signing.ts signs: the version line, node, type, job id, attempt, expiry and a SHA-256 hex.
const message = new TextEncoder().encode(`scalar-cmd/1\n${node}\nrun\n${cmd.job_id}\n1\n${headers.get(SIGNING_HEADERS.exp)}\n${'0'.repeat(64)}`);
const sig = kp.sign(message);
report('nkeys sign (tweetnacl)', rounds(NKEYS_OPS, () => kp.sign(message)), NKEYS_OPS);
report('nkeys verify (tweetnacl)', rounds(NKEYS_OPS, () => {
  if (!pub.verify(message, sig)) throw new Error('verify failed');
}), NKEYS_OPS);
