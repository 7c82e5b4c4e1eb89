/**
 * Small process helpers for the host runtimes (process, docker): liveness
 * that tells a zombie from a live process and a recycled pid from the one we
 * started, and signalling a whole process group.
 *
 * Liveness reads /proc where there is one (Linux). Zombies count as gone: an
 * orphaned job process is reaped by PID 1, and where PID 1 does not reap
 * (a container whose init is the agent, some sandboxes) it stays a zombie.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';

const HAS_PROC = (() => {
  try {
    readFileSync('/proc/self/stat');
    return true;
  } catch {
    return false;
  }
})();

interface ProcStat {
  state: string;
  pgrp: number;
  /** Field 22, clock ticks since boot: with the pid, identifies one process. */
  startTime: string;
}

function readStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0] ?? '?', pgrp: Number(rest[2]), startTime: rest[19] ?? '' };
}

/** The start time of `pid` (Linux), to recognise it later; null where unknown. */
export function processStartTime(pid: number): string | null {
  if (!HAS_PROC) return null;
  return readStat(pid)?.startTime || null;
}

/** Whether `pid` runs and (when `startTime` is known) is the same process as before. */
export function pidAlive(pid: number, startTime: string | null = null): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (!HAS_PROC) return true;
  const st = readStat(pid);
  if (!st) return false;
  if (st.state === 'Z' || st.state === 'X') return false;
  if (startTime && st.startTime !== startTime) return false;
  return true;
}

/**
 * Whether `pid` now names another process than the one started at
 * `startTime` (the pid was recycled). False when unknown or gone.
 */
export function pidRecycled(pid: number, startTime: string | null): boolean {
  if (!startTime || !HAS_PROC) return false;
  const st = readStat(pid);
  return st !== null && st.startTime !== startTime;
}

/** Whether any live (non-zombie) process is in process group `pgid`. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (!HAS_PROC) return true;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return true;
  }
  for (const name of entries) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const st = readStat(Number(name));
    if (st && st.pgrp === pgid && st.state !== 'Z' && st.state !== 'X') return true;
  }
  return false;
}

/**
 * Process groups whose leader was started with `arg` as one of its
 * arguments (Linux; empty elsewhere). The wrappers of the process and docker
 * runtimes get their attempt's work dir as an argument, so this finds an
 * attempt's processes when its pid was never recorded (a crash mid-launch).
 */
export function groupsWithArg(arg: string): number[] {
  if (!HAS_PROC) return [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const groups = new Set<number>();
  for (const name of entries) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const pid = Number(name);
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!argv.includes(arg)) continue;
    const st = readStat(pid);
    if (st && st.pgrp === pid && st.state !== 'Z' && st.state !== 'X') groups.add(pid);
  }
  return [...groups];
}

/** Sends `signal` to process group `pgid`; false when there was no such group. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: gone; EPERM: not ours
  }
}

const SIGNAL_NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(constants.signals)) {
  // First name wins: SIGABRT before its alias SIGIOT.
  if (!SIGNAL_NAMES.has(n as number)) SIGNAL_NAMES.set(n as number, name);
}

export function signalNumber(name: string): number | null {
  const n = (constants.signals as Record<string, number | undefined>)[name];
  return n ?? null;
}

/**
 * The signal a shell-reported status means: a shell reports a child killed
 * by signal n as 128 + n. (A program that itself exits with such a code
 * reads the same; shells cannot tell them apart either.)
 */
export function signalFromStatus(code: number): string | null {
  if (code <= 128 || code > 128 + 64) return null;
  return SIGNAL_NAMES.get(code - 128) ?? null;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
