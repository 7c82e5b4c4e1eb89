/**
 * An agent whose every move the test makes: it speaks the real protocol over
 * the real NATS (registered, heartbeats, started, exited) and reads the real
 * commands the coordinator sends, each of which must carry a good signature
 * of the test key for this node (it throws otherwise, as the real agent
 * would refuse it). Used to test the coordinator step by step; the e2e tests
 * run the real `scalar agent`.
 */
import { randomUUID } from 'node:crypto';
import { AckPolicy, type Consumer } from '@nats-io/jetstream';
import type { Bus } from '../../src/wire/connection.ts';
import { encodeJson, nodeCommandSchema, type NodeCommand } from '../../src/wire/messages.ts';
import type { AttemptRef } from '../../src/domain/cluster.ts';
import { testVerifier } from './signing.ts';

export class ScriptedAgent {
  readonly bootId = randomUUID();
  private consumer?: Consumer;
  private hbTimer?: NodeJS.Timeout;
  running: AttemptRef[] = [];

  constructor(
    private readonly bus: Bus,
    readonly nodeId: string,
    readonly opts: { pool: 'fast' | 'flex'; gpus: number; vramGb: number; cpu?: number; ramGb?: number },
  ) {}

  private now = () => new Date().toISOString();

  async register(): Promise<void> {
    const t = this.bus.t;
    await this.bus.js.publish(
      t.subjects.nodeEvents(this.nodeId),
      encodeJson({
        type: 'registered',
        node_id: this.nodeId,
        boot_id: this.bootId,
        pool: this.opts.pool,
        runtime: 'simulated',
        cpu_cores: this.opts.cpu ?? 64,
        ram_gb: this.opts.ramGb ?? 512,
        gpus: Array.from({ length: this.opts.gpus }, (_, i) => ({
          index: i,
          uuid: `GPU-${this.nodeId}-${i}`,
          model: `Test ${this.opts.vramGb}GB`,
          vram_gb: this.opts.vramGb,
        })),
        running: this.running,
        time: this.now(),
      }),
    );
  }

  heartbeats(intervalMs: number): void {
    this.stopHeartbeats();
    const beat = () =>
      this.bus.nc.publish(
        this.bus.t.subjects.nodeHeartbeat(this.nodeId),
        encodeJson({
          node_id: this.nodeId,
          boot_id: this.bootId,
          running: this.running,
          free: { gpus: 0, cpu_cores: 0, ram_gb: 0 },
          used: { gpus: 0, cpu_cores: 0, ram_gb: 0 },
          time: this.now(),
        }),
      );
    beat();
    this.hbTimer = setInterval(beat, intervalMs);
  }

  stopHeartbeats(): void {
    clearInterval(this.hbTimer);
  }

  /** The next command sent to this node, or null after `timeoutMs`. */
  async nextCommand(timeoutMs = 5000): Promise<NodeCommand | null> {
    if (!this.consumer) {
      const t = this.bus.t;
      const name = t.consumers.node(this.nodeId);
      await this.bus.jsm.consumers.add(t.streams.NODE_CMDS, {
        durable_name: name,
        ack_policy: AckPolicy.Explicit,
        filter_subject: t.subjects.nodeCmd(this.nodeId),
      });
      this.consumer = await this.bus.js.consumers.get(t.streams.NODE_CMDS, name);
    }
    const m = await this.consumer.next({ expires: Math.max(timeoutMs, 1000) });
    if (!m) return null;
    m.ack();
    const verdict = await testVerifier.verify(this.nodeId, m.headers, m.data, Date.now());
    if (!verdict.ok) throw new Error(`${this.nodeId}: the coordinator sent a command its agent would refuse (${verdict.reason}: ${verdict.detail})`);
    return nodeCommandSchema.parse(m.json());
  }

  /** Waits for a command of this type (skipping others). */
  async expect<T extends NodeCommand['type']>(type: T, timeoutMs = 5000): Promise<Extract<NodeCommand, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.nodeId}: no ${type} command within ${timeoutMs} ms`);
      const cmd = await this.nextCommand(Math.max(left, 100));
      if (cmd?.type === type) return cmd as Extract<NodeCommand, { type: T }>;
    }
  }

  private async event(body: Record<string, unknown>): Promise<void> {
    await this.bus.js.publish(this.bus.t.subjects.nodeEvents(this.nodeId), encodeJson({ node_id: this.nodeId, time: this.now(), ...body }));
  }

  async started(ref: AttemptRef, pid = 4242): Promise<void> {
    this.running.push(ref);
    await this.event({ type: 'started', ...ref, pid });
  }

  async exited(ref: AttemptRef, code: number, killed = false): Promise<void> {
    this.running = this.running.filter((r) => !(r.job_id === ref.job_id && r.attempt === ref.attempt));
    await this.event({ type: 'exited', ...ref, code, signal: killed ? 'SIGTERM' : null, killed });
  }

  async launchFailed(ref: AttemptRef, reason: string, code?: 'command_expired' | 'node_rebooted'): Promise<void> {
    await this.event({ type: 'launch_failed', ...ref, reason, ...(code ? { code } : {}) });
  }

  stop(): void {
    this.stopHeartbeats();
  }
}
