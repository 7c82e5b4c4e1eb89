/**
 * NATS subjects, JetStream streams and consumer names: the wire contract
 * between the API, the coordinator and the agents (see ARCHITECTURE.md).
 *
 * Everything is namespaced by SCALAR_NATS_PREFIX (default `scalar`), so
 * several Scalar installations (or test runs) can share one NATS server:
 * subjects start with `<prefix>.`, streams with `<PREFIX>_`.
 *
 * Node ids become subject tokens and consumer names, so they are limited to
 * NODE_ID_PATTERN (no dots, wildcards or spaces).
 */
export const NODE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
export const NATS_PREFIX_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;

export type NodeAction = 'drain' | 'resume';

export interface Topology {
  prefix: string;
  streams: {
    /** api → coordinator: submitted (wake-ups). Work queue: a message lives until the coordinator handled it. */
    JOBS: string;
    /** coordinator → agent: run and kill, one durable consumer per node. */
    NODE_CMDS: string;
    /** agent → coordinator: registered, started, exited, launch_failed. */
    NODE_EVENTS: string;
    /** agent → api: stdout/stderr lines, kept for SCALAR_LOG_RETENTION_HOURS. */
    LOGS: string;
  };
  subjects: {
    jobsAll: string;
    jobsSubmitted: string;
    nodeCmd(nodeId: string): string;
    allNodeCmds: string;
    nodeEvents(nodeId: string): string;
    allNodeEvents: string;
    /** Core NATS (not stored): a missed heartbeat is simply missed. */
    nodeHeartbeat(nodeId: string): string;
    allHeartbeats: string;
    /** Core NATS, coordinator → agent: "I do not know you (any more): register again". */
    nodeHello(nodeId: string): string;
    /** Core NATS request/reply, agent → agent: "is an agent already running as this node?" */
    nodeWhois(nodeId: string): string;
    /** A log line of `jobId` printed on `nodeId` (the node's own subject, so only its credential may publish it). */
    logs(jobId: string, nodeId: string): string;
    /** Every line of a job, from every node (a gang's members share one log). */
    jobLogs(jobId: string): string;
    /** A job's lines from agents older than per-node log subjects (read on servers that take several filters). */
    legacyJobLogs(jobId: string): string;
    /** What one node may publish to: its lines of any job. */
    nodeLogs(nodeId: string): string;
    allLogs: string;
    /** Core NATS request/reply: operator actions the coordinator answers (drain, resume). */
    coordNode(action: NodeAction): string;
    /**
     * Core NATS request/reply, api → the coordinator's capacity actor: buy or release a capacity block
     * (CapacityRequest / CapacityReply in messages.ts).
     */
    coordCapacity: string;
    /**
     * Core NATS request/reply, api → the leading coordinator: cancel a job
     * (JobCancelRequest / JobCancelReply in messages.ts). Outside `jobs.>`, so
     * the JOBS stream never stores it (a stream would answer with a PubAck).
     */
    coordJobCancel: string;
  };
  consumers: {
    coordinatorJobs: string;
    coordinatorEvents: string;
    node(nodeId: string): string;
  };
  /** The node id a subject like `<prefix>.node.<id>.events` names, or null. */
  nodeIdOfSubject(subject: string): string | null;
}

export function topology(prefix = 'scalar'): Topology {
  if (!NATS_PREFIX_PATTERN.test(prefix)) throw new Error(`invalid NATS prefix ${JSON.stringify(prefix)}`);
  const up = prefix.toUpperCase().replace(/-/g, '_');
  const p = prefix;
  return {
    prefix,
    streams: { JOBS: `${up}_JOBS`, NODE_CMDS: `${up}_NODE_CMDS`, NODE_EVENTS: `${up}_NODE_EVENTS`, LOGS: `${up}_LOGS` },
    subjects: {
      jobsAll: `${p}.jobs.>`,
      jobsSubmitted: `${p}.jobs.submitted`,
      nodeCmd: (id) => `${p}.node.${id}.cmd`,
      allNodeCmds: `${p}.node.*.cmd`,
      nodeEvents: (id) => `${p}.node.${id}.events`,
      allNodeEvents: `${p}.node.*.events`,
      nodeHeartbeat: (id) => `${p}.node.${id}.heartbeat`,
      allHeartbeats: `${p}.node.*.heartbeat`,
      nodeHello: (id) => `${p}.node.${id}.hello`,
      nodeWhois: (id) => `${p}.node.${id}.whois`,
      logs: (jobId, nodeId) => `${p}.logs.${jobId}.${nodeId}`,
      jobLogs: (jobId) => `${p}.logs.${jobId}.*`,
      legacyJobLogs: (jobId) => `${p}.logs.${jobId}`,
      nodeLogs: (nodeId) => `${p}.logs.*.${nodeId}`,
      allLogs: `${p}.logs.>`,
      coordNode: (action) => `${p}.coord.node.${action}`,
      coordCapacity: `${p}.coord.capacity`,
      coordJobCancel: `${p}.coord.jobs.cancel`,
    },
    consumers: {
      coordinatorJobs: 'coordinator-jobs',
      coordinatorEvents: 'coordinator-events',
      node: (id) => `node-${id}`,
    },
    nodeIdOfSubject(subject) {
      const parts = subject.split('.');
      return parts.length === 4 && parts[0] === p && parts[1] === 'node' ? parts[2]! : null;
    },
  };
}
