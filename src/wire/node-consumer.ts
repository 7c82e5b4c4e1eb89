/**
 * A node's durable command consumer on NODE_CMDS: filtered on the node's
 * own command subject, explicit acks, redelivered until acked.
 *
 * On a secured server the coordinator creates it (when the node registers),
 * since an agent's credential may only read and pull its own consumer, never
 * create one. On an open server the agent creates its own, as before.
 */
import { AckPolicy, DeliverPolicy, JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { Topology } from './subjects.ts';

/** ack_wait of a node's command consumer. */
export const NODE_CMD_ACK_WAIT_MS = 30_000;

/** Creates the node's consumer, or brings an existing one's ack settings in line. Idempotent. */
export async function ensureNodeConsumer(jsm: JetStreamManager, t: Topology, nodeId: string): Promise<void> {
  const stream = t.streams.NODE_CMDS;
  const name = t.consumers.node(nodeId);
  const filter = t.subjects.nodeCmd(nodeId);
  const ackWait = nanos(NODE_CMD_ACK_WAIT_MS);
  try {
    const info = await jsm.consumers.info(stream, name);
    if (info.config.filter_subject !== filter) {
      throw new Error(`consumer ${name} on ${stream} filters ${JSON.stringify(info.config.filter_subject)}, not ${filter}; delete it`);
    }
    if (info.config.ack_wait !== ackWait || (info.config.max_deliver ?? -1) !== -1) {
      await jsm.consumers.update(stream, name, { ack_wait: ackWait, max_deliver: -1 });
    }
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
    await jsm.consumers
      .add(stream, {
        durable_name: name,
        filter_subject: filter,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait: ackWait,
        max_deliver: -1,
      })
      .catch((e: Error) => {
        if (!/already in use|exists/i.test(e.message)) throw e;
      });
  }
}
