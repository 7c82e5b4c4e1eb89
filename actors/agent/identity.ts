/**
 * One agent per node id. Two agents with one id would share the node's
 * command consumer and split its commands between them, so a starting agent
 * asks whether one already answers for the id, refuses to start if so, and
 * from then on answers itself.
 */
import { hostname } from 'node:os';
import type { Subscription } from '@nats-io/transport-node';
import type { Bus } from '../../src/wire/connection.ts';
import { encodeJson } from '../../src/wire/messages.ts';

export class NodeIdTakenError extends Error {
  constructor(nodeId: string, host: string, bootId: string) {
    super(`another agent is already running as node ${nodeId} (on ${host}, boot ${bootId}); give this one its own --node-id`);
    this.name = 'NodeIdTakenError';
  }
}

/** Throws NodeIdTakenError when another agent answers; otherwise answers for the id until the subscription ends. */
export async function claimNodeId(bus: Bus, nodeId: string, bootId: string): Promise<Subscription> {
  const subject = bus.t.subjects.nodeWhois(nodeId);
  let other: { boot_id?: string; host?: string } | null = null;
  try {
    const reply = await bus.nc.request(subject, encodeJson({ boot_id: bootId }), { timeout: 500 });
    other = (reply.json() as { boot_id?: string; host?: string }) ?? {};
  } catch {
    // No responders, or no answer in time: nobody runs as this node.
  }
  if (other) throw new NodeIdTakenError(nodeId, other.host ?? 'another host', other.boot_id ?? 'unknown');
  return bus.nc.subscribe(subject, {
    callback: (err, m) => {
      if (!err) m.respond(encodeJson({ boot_id: bootId, host: hostname(), pid: process.pid }));
    },
  });
}
