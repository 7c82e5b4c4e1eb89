import type { Bus } from '../../src/wire/connection.ts';
import { encodeJson } from '../../src/wire/messages.ts';
import type { NodeLink } from './ports.ts';

/** Commands over JetStream: `<prefix>.node.<id>.cmd` in the NODE_CMDS stream, hellos over core NATS. */
export function natsNodeLink(bus: Bus): NodeLink {
  return {
    async send(nodeId, cmd, msgID) {
      await bus.js.publish(bus.t.subjects.nodeCmd(nodeId), encodeJson(cmd), msgID ? { msgID } : undefined);
    },
    hello(nodeId) {
      bus.nc.publish(bus.t.subjects.nodeHello(nodeId), encodeJson({ reason: 'unknown node' }));
    },
    async forget(nodeId) {
      await bus.jsm.streams.purge(bus.t.streams.NODE_CMDS, { filter: bus.t.subjects.nodeCmd(nodeId) });
    },
  };
}
