/**
 * What an agent does at start before anything else: reads the done log and
 * the state file into the attempt table and settles every attempt the last
 * agent left. An interrupted launch is reported launch_failed (its fate is
 * unknown, so it is never launched again); a running attempt is re-attached
 * through its runtime record and watched again, or, when it ended meanwhile
 * or cannot be re-attached, marked exited and not yet reported. After a
 * reboot of the host (its boot id changed since the state file was written)
 * nothing is re-attached: every attempt that was launching or running is
 * reported launch_failed with code node_rebooted, and the coordinator
 * requeues it.
 */
import type { Logger } from 'pino';
import { attemptKey } from '../../src/domain/cluster.ts';
import { groupsWithArg, signalGroup } from '../../src/runtimes/proc.ts';
import type { Execution, ExitResult, Runtime } from '../../src/runtimes/types.ts';
import { isDone, type AttemptTable } from './attempts.ts';
import type { Executions } from './executions.ts';
import { readDoneLog, readSeenRuns, readStateFile } from './state.ts';

const RELAUNCH_REASON = 'agent restarted while launching';
/** The coordinator requeues on it (launch_failed, code node_rebooted): the attempt died with its host. */
export const NODE_REBOOTED_REASON = 'node rebooted: the host restarted while the attempt ran';

function isExecution(r: Execution | ExitResult): r is Execution {
  return typeof (r as Execution).kill === 'function';
}

export interface RecoveryDeps {
  nodeId: string;
  runtime: Runtime;
  attempts: AttemptTable;
  executions: Executions;
  log: Logger;
}

export async function recover({ nodeId, runtime, attempts, executions, log }: RecoveryDeps): Promise<void> {
  const { stateDir, entries } = attempts;
  const nowMs = Date.now();
  for (const r of await readSeenRuns(stateDir)) if (r.exp > nowMs) attempts.noteRun(r, r.exp);
  for (const e of await readDoneLog(stateDir)) if (isDone(e)) entries.set(attemptKey(e), e);
  const loaded = await readStateFile(stateDir);
  if (!loaded) return;
  if (loaded.node_id !== nodeId) {
    throw new Error(`state directory ${stateDir} belongs to node ${loaded.node_id}, not ${nodeId}`);
  }
  for (const e of loaded.executions) entries.set(attemptKey(e), e);
  const now = new Date().toISOString();
  // The host restarted since the file was written: whatever ran died with it, and its pids may be reused.
  const rebooted = Boolean(loaded.host_boot_id && attempts.hostBoot && loaded.host_boot_id !== attempts.hostBoot);
  if (rebooted) {
    const lost = [...entries.values()].filter((e) => e.status === 'launching' || e.status === 'running');
    if (lost.length > 0) log.warn({ attempts: lost.map(attemptKey) }, 'this host rebooted while attempts ran: reporting them lost with it (node_rebooted)');
    for (const e of lost) {
      Object.assign(e, { status: 'exited', launch_failed: NODE_REBOOTED_REASON, launch_failed_code: 'node_rebooted', reported: false, ended_at: now });
    }
  }
  for (const [key, e] of entries) {
    if (e.status === 'launching') {
      // It may have started before the crash: its pid was never recorded, but
      // its wrapper was given its work dir. Nothing of it may run unreported.
      const groups = e.work_dir ? groupsWithArg(e.work_dir) : [];
      for (const g of groups) signalGroup(g, 'SIGKILL');
      log.warn(
        { job_id: e.job_id, attempt: e.attempt, killed_groups: groups },
        'found an attempt whose launch was interrupted: reporting launch_failed',
      );
      Object.assign(e, { status: 'exited', launch_failed: RELAUNCH_REASON, reported: false, ended_at: now });
      continue;
    }
    if (e.status !== 'running') continue;
    let r: Execution | ExitResult | null = null;
    if (e.record) {
      try {
        r = await runtime.reattach(e.record, executions.sinkFor(key, e));
      } catch (err) {
        log.error({ err, job_id: e.job_id, attempt: e.attempt }, 're-attaching failed');
      }
    }
    if (r && isExecution(r)) {
      e.record = r.record;
      log.info({ job_id: e.job_id, attempt: e.attempt, pid: r.pid }, 're-attached to a running attempt');
      executions.watch(key, e, r);
      if (e.killRequested) void r.kill((e.kill_grace_sec ?? 10) * 1000).catch(() => undefined);
    } else {
      const res = r ?? { code: -1, signal: null };
      if (!r) log.warn({ job_id: e.job_id, attempt: e.attempt }, 'cannot re-attach to an attempt: reporting it ended with an unknown status');
      else log.info({ job_id: e.job_id, attempt: e.attempt, code: res.code }, 'an attempt ended while no agent ran');
      Object.assign(e, {
        status: 'exited',
        exit: { code: res.code, signal: res.signal, killed: !!e.killRequested },
        reported: false,
        ended_at: now,
      });
    }
  }
}
