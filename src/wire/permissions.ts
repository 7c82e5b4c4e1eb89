/**
 * Who may publish and subscribe to what on NATS: one set of rules per role,
 * written into the server's authorization block by `scalar nats-config`
 * (see src/wire/nats-auth.ts) and published as a table in docs/security.md.
 *
 * The roles:
 *   - `api`: submits wake-ups, asks the coordinator (cancel, drain, resume,
 *     capacity), and reads the LOGS stream;
 *   - `coordinator`: the control plane's root. It manages this installation's
 *     streams and consumers, sends commands and hellos, and reads every
 *     node's events and heartbeats. It also hosts the simulated agents of
 *     bought capacity blocks, so it may do what an agent does;
 *   - `agent` (one credential per node id): consumes its own command consumer,
 *     publishes its own events, heartbeats and log lines, and receives replies
 *     on its own inbox prefix. Nothing under another node's id, and no
 *     JetStream API beyond its own consumer's INFO and MSG.NEXT.
 *
 * Each role receives replies under its own inbox prefix (`inboxPrefix`), so
 * no role needs `_INBOX.>`, which would let it read everyone's replies.
 * Everything is scoped to the installation's prefix and streams, so two
 * installations can share a server without reaching each other.
 */
import { NODE_ID_PATTERN, type Topology } from './subjects.ts';

export const ROLES = ['api', 'coordinator', 'agent'] as const;
export type Role = (typeof ROLES)[number];

export interface RolePermissions {
  publish: string[];
  subscribe: string[];
  /**
   * May publish one reply to the reply subject of a request it received
   * (NATS's `allow_responses`): the coordinator answers the API's requests,
   * an agent answers `whois` for its own id.
   */
  allowResponses: boolean;
}

/** The inbox prefix of a role's connection: its replies, and only its, arrive under it. */
export function inboxPrefix(t: Topology, role: Role, nodeId?: string): string {
  return role === 'agent' ? `_INBOX.${t.prefix}.node.${requireNodeId(nodeId)}` : `_INBOX.${t.prefix}.${role}`;
}

function requireNodeId(nodeId: string | undefined): string {
  if (!nodeId || !NODE_ID_PATTERN.test(nodeId)) throw new Error(`an agent credential needs a valid node id, not ${JSON.stringify(nodeId)}`);
  return nodeId;
}

/** JetStream API subjects that touch one stream (and its consumers) and nothing else. */
function streamApi(stream: string): string[] {
  return [
    `$JS.API.STREAM.*.${stream}`, // INFO, CREATE, UPDATE, PURGE (DELETE too: the coordinator owns its streams)
    `$JS.API.STREAM.MSG.*.${stream}`,
    `$JS.API.DIRECT.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}.>`,
    `$JS.API.CONSUMER.*.${stream}`, // CREATE (ephemeral, before 2.10), NAMES, LIST
    `$JS.API.CONSUMER.*.${stream}.>`, // CREATE.<c>[.<filter>], INFO, DELETE
    `$JS.API.CONSUMER.DURABLE.CREATE.${stream}.*`,
    `$JS.API.CONSUMER.MSG.NEXT.${stream}.*`,
    `$JS.ACK.${stream}.>`,
  ];
}

export function permissionsFor(t: Topology, role: Role, nodeId?: string): RolePermissions {
  const p = t.prefix;
  const s = t.streams;
  const inbox = `${inboxPrefix(t, role, nodeId)}.>`;
  switch (role) {
    case 'coordinator':
      return {
        publish: [`${p}.>`, '$JS.API.INFO', ...Object.values(s).flatMap(streamApi)],
        subscribe: [`${p}.>`, inbox],
        allowResponses: true,
      };
    case 'api': {
      const logs = s.LOGS;
      return {
        publish: [
          t.subjects.jobsAll,
          `${p}.coord.>`,
          // Reading logs: an ordered consumer per read (created, pulled, deleted) and the last message of a job.
          `$JS.API.CONSUMER.CREATE.${logs}`,
          `$JS.API.CONSUMER.CREATE.${logs}.>`,
          `$JS.API.CONSUMER.DELETE.${logs}.>`,
          `$JS.API.CONSUMER.INFO.${logs}.>`,
          `$JS.API.CONSUMER.MSG.NEXT.${logs}.>`,
          `$JS.API.STREAM.MSG.GET.${logs}`,
          `$JS.API.DIRECT.GET.${logs}`,
          `$JS.API.DIRECT.GET.${logs}.>`,
          `$JS.API.STREAM.INFO.${logs}`,
        ],
        subscribe: [inbox],
        allowResponses: false,
      };
    }
    case 'agent': {
      const id = requireNodeId(nodeId);
      const consumer = t.consumers.node(id);
      return {
        publish: [
          t.subjects.nodeEvents(id),
          t.subjects.nodeHeartbeat(id),
          t.subjects.nodeWhois(id),
          t.subjects.nodeLogs(id),
          `$JS.API.CONSUMER.INFO.${s.NODE_CMDS}.${consumer}`,
          `$JS.API.CONSUMER.MSG.NEXT.${s.NODE_CMDS}.${consumer}`,
          `$JS.ACK.${s.NODE_CMDS}.${consumer}.>`,
        ],
        subscribe: [t.subjects.nodeHello(id), t.subjects.nodeWhois(id), inbox],
        allowResponses: true,
      };
    }
  }
}
