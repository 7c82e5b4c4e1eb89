/**
 * One coordinator signing key per test process (a generated cluster nkey),
 * the verifier that accepts it, and what tests that play the coordinator
 * need: a run command to send, and a publish that signs it as
 * natsNodeLink does.
 */
import { randomUUID } from 'node:crypto';
import type { Bus } from '../../src/wire/connection.ts';
import { encodeJson, type KillCommand, type RunCommand } from '../../src/wire/messages.ts';
import { CommandSigner, CommandVerifier, generateSeed } from '../../src/wire/signing.ts';

export const TEST_COMMAND_TTL_MS = 600_000;
export const testSeed = generateSeed();
export const testSigner = CommandSigner.fromSeed(testSeed, TEST_COMMAND_TTL_MS);
export const testVerifier = new CommandVerifier([testSigner.publicKey]);

/** A run command for attempt 1 of a fresh job, on GPU 0. */
export function aRunCommand(over: Partial<RunCommand> = {}): RunCommand {
  return {
    type: 'run',
    job_id: randomUUID(),
    attempt: 1,
    gpu_indices: [0],
    image: '',
    command: ['true'],
    env: {},
    cpu_cores: 1,
    ram_gb: 1,
    expected_duration_sec: 1,
    ...over,
  };
}

export interface PublishOptions {
  /** Default: the test signer. null: unsigned. */
  signer?: CommandSigner | null;
  /** The node the signature names. Default: the node published to. */
  signFor?: string;
  /** The signing time. Default: now. */
  nowMs?: number;
}

/** Publishes `cmd` (or any body) on the node's command subject, signed as the coordinator would. */
export async function publishCommand(bus: Bus, nodeId: string, cmd: RunCommand | KillCommand | Record<string, unknown>, o: PublishOptions = {}): Promise<void> {
  const body = encodeJson(cmd);
  const signer = o.signer === undefined ? testSigner : o.signer;
  const fields = { type: String(cmd.type), job_id: String(cmd.job_id), attempt: Number(cmd.attempt) };
  const headers = signer ? signer.sign(o.signFor ?? nodeId, fields, body, o.nowMs ?? Date.now()) : undefined;
  await bus.js.publish(bus.t.subjects.nodeCmd(nodeId), body, headers ? { headers } : undefined);
}
