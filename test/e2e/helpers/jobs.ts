/**
 * Jobs over HTTP for end-to-end tests: submit with per-file defaults, read,
 * wait for a status, read logs. One copy for every e2e file.
 */
import { expect } from 'vitest';
import { GiveUp, until, type Cluster } from './cluster.ts';

/** The job fields e2e tests read (a subset of the API's job object). */
export interface E2eJob {
  id: string;
  status: string;
  status_reason: string | null;
  failure_code: string | null;
  attempt: number;
  node_id: string | null;
  gpu_indices: number[] | null;
  placements: { node_id: string; gpu_indices: number[] }[];
  exit_code: number | null;
  preemptions: number;
  finished_at: string | null;
}

export interface E2eLogLine {
  attempt: number;
  node_id: string | null;
  stream: 'stdout' | 'stderr';
  line: string;
  time: string;
}

export const TERMINAL = ['completed', 'failed', 'cancelled'];

export class Jobs {
  constructor(
    private readonly cluster: Cluster,
    /** Merged under every submitted body. */
    private readonly defaults: Record<string, unknown>,
  ) {}

  /** POST /jobs; expects 201. */
  async submit(body: Record<string, unknown>): Promise<E2eJob> {
    const res = await this.cluster.http<E2eJob>('POST', '/jobs', { ...this.defaults, ...body });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body;
  }

  async get(id: string): Promise<E2eJob> {
    const res = await this.cluster.http<E2eJob>('GET', `/jobs/${id}`);
    expect(res.status).toBe(200);
    return res.body;
  }

  /** Polls until `test(job)`; fails at once if the job ends without passing it. The error says where the job is now. */
  waitFor(id: string, test: (j: E2eJob) => boolean, what: string, timeoutMs = 20_000): Promise<E2eJob> {
    return until(
      async () => {
        const j = await this.get(id);
        if (test(j)) return j;
        if (TERMINAL.includes(j.status)) throw new GiveUp(`job ${id} ended ${j.status} (${j.status_reason}) before: ${what}`);
        return false;
      },
      timeoutMs,
      `${id}: ${what}`,
    ).catch(async (err: Error) => {
      const j = await this.get(id).catch(() => null);
      throw new Error(`${err.message}; job is now ${JSON.stringify(j)}`);
    });
  }

  /** Polls until the job is in `status`. */
  waitStatus(id: string, status: string, timeoutMs?: number): Promise<E2eJob> {
    return this.waitFor(id, (j) => j.status === status, status, timeoutMs);
  }

  async logs(id: string): Promise<E2eLogLine[]> {
    const res = await this.cluster.http<{ data: E2eLogLine[]; next_cursor: string | null }>('GET', `/jobs/${id}/logs`);
    expect(res.status).toBe(200);
    return res.body.data;
  }
}
