import type { Bus } from '../../src/wire/connection.ts';
import { encodeJson } from '../../src/wire/messages.ts';
import type { CommandSigner } from '../../src/wire/signing.ts';
import type { NodeLink } from './ports.ts';

/**
 * Commands over JetStream: `<prefix>.node.<id>.cmd` in the NODE_CMDS stream,
 * each signed by `signer` when it is published (a re-send is signed afresh,
 * with a new expiry); hellos over core NATS.
 */
export function natsNodeLink(bus: Bus, signer: CommandSigner): NodeLink {
  return {
    async send(nodeId, cmd, msgID) {
      const body = encodeJson(cmd);
      const headers = signer.sign(nodeId, cmd, body, Date.now());
      await bus.js.publish(bus.t.subjects.nodeCmd(nodeId), body, msgID ? { msgID, headers } : { headers });
    },
    hello(nodeId) {
      bus.nc.publish(bus.t.subjects.nodeHello(nodeId), encodeJson({ reason: 'unknown node' }));
    },
    async forget(nodeId) {
      await bus.jsm.streams.purge(bus.t.streams.NODE_CMDS, { filter: bus.t.subjects.nodeCmd(nodeId) });
    },
  };
}
