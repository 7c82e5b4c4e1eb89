/**
 * Plain-text tables of simulation metrics: one run (formatRun) and several
 * side by side (formatCompare). Fixed-width columns, no colours, meant to be
 * read in a terminal or pasted into a note; under ~100 columns for the usual
 * two or three runs.
 */
import type { SimMetrics, TierStats } from './types.ts';

const WIDTH = 100;
const DASH = '—';

/** Rounds to one decimal and drops a trailing ".0". */
function oneDecimal(v: number): string {
  const s = v.toFixed(1);
  return s.endsWith('.0') ? s.slice(0, -2) : s;
}

/**
 * A duration for people: `0 s`, `8.2 s`, `4.5 min`, `14 min`, `3.2 h`,
 * `2.1 d`. One decimal (dropped when it is 0), whole minutes from 10 min on;
 * a value that rounds up to the next unit is shown in that unit (59.97 s →
 * `1 min`).
 */
export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec)) return DASH;
  if (sec < 0) return `-${formatDuration(-sec)}`;
  if (Math.round(sec * 10) / 10 < 60) return `${oneDecimal(sec)} s`;
  const min = sec / 60;
  if (min < 9.95) return `${oneDecimal(min)} min`;
  if (Math.round(min) < 60) return `${Math.round(min)} min`;
  const h = sec / 3600;
  if (Math.round(h * 10) / 10 < 24) return `${oneDecimal(h)} h`;
  return `${oneDecimal(sec / 86400)} d`;
}

/** An integer with thousands separators (locale-independent): 12,345. */
export function formatCount(v: number): string {
  if (!Number.isFinite(v)) return DASH;
  const r = Math.round(v);
  const s = String(Math.abs(r)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return r < 0 ? `-${s}` : s;
}

/** A share (0–1) as a percentage with one decimal: 0.7234 → `72.3%`. */
export function formatPercent(share: number): string {
  if (!Number.isFinite(share)) return DASH;
  return `${(share * 100).toFixed(1)}%`;
}

/** A number with one decimal below 100 and whole above: 3.25 → `3.3`, 1234.5 → `1,235`. */
function formatAmount(v: number): string {
  if (!Number.isFinite(v)) return DASH;
  return Math.abs(v) < 100 ? oneDecimal(v) : formatCount(v);
}

function formatUsd(v: number): string {
  if (!Number.isFinite(v)) return DASH;
  return Math.abs(v) < 100 ? `$${v.toFixed(2)}` : `$${formatCount(v)}`;
}

const gpuHours = (gpuSec: number): number => gpuSec / 3600;

/**
 * other ÷ first, with two decimals; `—` when first is 0 (or either is not a
 * number).
 */
export function formatRatio(other: number, first: number): string {
  if (!Number.isFinite(other) || !Number.isFinite(first) || first === 0) return DASH;
  return (other / first).toFixed(2);
}

/**
 * Lays out rows of cells in columns two spaces apart: the first column
 * left-aligned, the others right-aligned (or left-aligned with 'left'). A row
 * of one cell is printed as is (a section title). Trailing spaces are trimmed.
 */
function table(rows: string[][], align: 'right' | 'left' = 'right'): string {
  const widths: number[] = [];
  for (const row of rows) {
    if (row.length < 2) continue;
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows
    .map((row) => {
      if (row.length < 2) return row[0] ?? '';
      return row
        .map((cell, i) => (i === 0 || align === 'left' ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
        .join('  ')
        .trimEnd();
    })
    .join('\n');
}

/** Joins parts with two spaces, starting a new line before the width is passed. */
function wrap(parts: string[], width = WIDTH): string {
  const lines: string[] = [];
  let line = '';
  for (const p of parts) {
    if (line && line.length + 2 + p.length > width) {
      lines.push(line);
      line = p;
    } else {
      line = line ? `${line}  ${p}` : p;
    }
  }
  if (line) lines.push(line);
  return lines.join('\n');
}

const onOff = (b: boolean): string => (b ? 'on' : 'off');

function tierRow(name: string, t: TierStats): string[] {
  return [
    name,
    formatCount(t.jobs),
    formatDuration(t.wait.mean),
    formatDuration(t.wait.p50),
    formatDuration(t.wait.p99),
    formatDuration(t.wait.max),
    formatDuration(t.jct.mean),
    formatDuration(t.jct.p99),
  ];
}

/** One run as a plain-text report. */
export function formatRun(m: SimMetrics): string {
  const header = wrap([
    `trace ${m.trace}`,
    `policy ${m.policy}`,
    `autoscale ${onOff(m.autoscale)}`,
    `fleet ${m.fleet}`,
    `tiers ${m.tierRule}`,
    `seed ${m.seed}`,
  ]);

  const tiers = table([
    ['tier', 'jobs', 'wait mean', 'p50', 'p99', 'max', 'JCT mean', 'JCT p99'],
    tierRow('FAST', m.tiers.FAST),
    tierRow('FLEX', m.tiers.FLEX),
    tierRow('all', m.tiers.all),
    tierRow('FAST warm', m.fastWarm),
  ]);

  const j = m.jobs;
  const c = m.capacity;
  const costShare = c.staticPeakCostUsd > 0 ? ` (${formatPercent(c.costUsd / c.staticPeakCostUsd)})` : '';
  const details = table([
    [
      'utilisation',
      `mean ${formatPercent(m.utilisation.mean)}, while waiting ${formatPercent(m.utilisation.whileWaiting)}` +
        ` (jobs waited ${formatPercent(m.utilisation.waitingShare)} of the time)`,
    ],
    [
      'fragmentation',
      `${formatAmount(m.fragmentation.meanGpus)} GPUs while waiting, ${formatPercent(m.fragmentation.shareOfFree)} of free`,
    ],
    ['queue', `mean ${formatAmount(m.queue.meanJobs)} jobs, max ${formatCount(m.queue.maxJobs)}`],
    ['makespan', formatDuration(m.makespanSec)],
    [
      'preemptions',
      `${formatCount(m.preemptions)} (${formatAmount(gpuHours(m.gpuSecondsLostToPreemption))} GPU-h lost)`,
    ],
    [
      'GPU-hours',
      `used ${formatAmount(gpuHours(m.gpuSeconds.used))}, needed ${formatAmount(gpuHours(m.gpuSeconds.needed))}`,
    ],
    [
      'jobs',
      `${formatCount(j.total)} total: ${formatCount(j.completed)} completed, ${formatCount(j.failed)} failed, ` +
        `${formatCount(j.unschedulable)} unschedulable, ${formatCount(j.unfinished)} unfinished`,
    ],
    [
      'capacity',
      `start ${formatCount(c.startGpus)} GPUs, peak ${formatCount(c.peakGpus)} GPUs, ${formatCount(c.blocksBought)} blocks bought`,
    ],
    ['cost', `${formatUsd(c.costUsd)} vs ${formatUsd(c.staticPeakCostUsd)} static peak${costShare}`],
    ['wall time', formatDuration(m.wallSec)],
  ], 'left');

  return `${header}\n\n${tiers}\n\n${details}\n`;
}

/** The label of a run's column: its policy, `+autoscale` when on. */
export function runLabel(m: SimMetrics): string {
  return m.autoscale ? `${m.policy}+autoscale` : m.policy;
}

/**
 * Column headings of the runs, on two lines so that columns stay narrow: the
 * policy (with ` #2`, ` #3`… when a label repeats), then `+autoscale` or
 * nothing.
 */
function headings(runs: SimMetrics[]): Array<[string, string]> {
  const seen = new Map<string, number>();
  return runs.map((m) => {
    const l = runLabel(m);
    const n = (seen.get(l) ?? 0) + 1;
    seen.set(l, n);
    const policy = n === 1 ? m.policy : `${m.policy} #${n}`;
    return [policy, m.autoscale ? '+autoscale' : ''];
  });
}

interface NumRow {
  label: string;
  get: (m: SimMetrics) => number;
  fmt: (v: number) => string;
}

function compareRows(): Array<NumRow | string> {
  const rows: Array<NumRow | string> = [];
  const tiers: Array<[string, (m: SimMetrics) => TierStats]> = [
    ['FAST', (m) => m.tiers.FAST],
    ['FLEX', (m) => m.tiers.FLEX],
    ['all', (m) => m.tiers.all],
    ['FAST warm', (m) => m.fastWarm],
  ];
  for (const [name, t] of tiers) {
    rows.push(name);
    rows.push({ label: '  jobs', get: (m) => t(m).jobs, fmt: formatCount });
    rows.push({ label: '  wait mean', get: (m) => t(m).wait.mean, fmt: formatDuration });
    rows.push({ label: '  wait p50', get: (m) => t(m).wait.p50, fmt: formatDuration });
    rows.push({ label: '  wait p99', get: (m) => t(m).wait.p99, fmt: formatDuration });
    rows.push({ label: '  wait max', get: (m) => t(m).wait.max, fmt: formatDuration });
    rows.push({ label: '  JCT mean', get: (m) => t(m).jct.mean, fmt: formatDuration });
    rows.push({ label: '  JCT p99', get: (m) => t(m).jct.p99, fmt: formatDuration });
  }
  rows.push('cluster');
  rows.push({ label: '  utilisation', get: (m) => m.utilisation.mean, fmt: formatPercent });
  rows.push({ label: '  util. while waiting', get: (m) => m.utilisation.whileWaiting, fmt: formatPercent });
  rows.push({ label: '  time jobs waited', get: (m) => m.utilisation.waitingShare, fmt: formatPercent });
  rows.push({ label: '  fragmented GPUs', get: (m) => m.fragmentation.meanGpus, fmt: formatAmount });
  rows.push({ label: '  fragmented % of free', get: (m) => m.fragmentation.shareOfFree, fmt: formatPercent });
  rows.push({ label: '  queue mean (jobs)', get: (m) => m.queue.meanJobs, fmt: formatAmount });
  rows.push({ label: '  queue max (jobs)', get: (m) => m.queue.maxJobs, fmt: formatCount });
  rows.push({ label: '  makespan', get: (m) => m.makespanSec, fmt: formatDuration });
  rows.push({ label: '  preemptions', get: (m) => m.preemptions, fmt: formatCount });
  rows.push({ label: '  GPU-h lost', get: (m) => gpuHours(m.gpuSecondsLostToPreemption), fmt: formatAmount });
  rows.push({ label: '  GPU-h used', get: (m) => gpuHours(m.gpuSeconds.used), fmt: formatAmount });
  rows.push({ label: '  GPU-h needed', get: (m) => gpuHours(m.gpuSeconds.needed), fmt: formatAmount });
  rows.push('jobs');
  rows.push({ label: '  completed', get: (m) => m.jobs.completed, fmt: formatCount });
  rows.push({ label: '  failed', get: (m) => m.jobs.failed, fmt: formatCount });
  rows.push({ label: '  unschedulable', get: (m) => m.jobs.unschedulable, fmt: formatCount });
  rows.push({ label: '  unfinished', get: (m) => m.jobs.unfinished, fmt: formatCount });
  rows.push('capacity');
  rows.push({ label: '  start GPUs', get: (m) => m.capacity.startGpus, fmt: formatCount });
  rows.push({ label: '  peak GPUs', get: (m) => m.capacity.peakGpus, fmt: formatCount });
  rows.push({ label: '  blocks bought', get: (m) => m.capacity.blocksBought, fmt: formatCount });
  rows.push({ label: '  cost (USD)', get: (m) => m.capacity.costUsd, fmt: formatUsd });
  rows.push({ label: '  static peak (USD)', get: (m) => m.capacity.staticPeakCostUsd, fmt: formatUsd });
  rows.push({ label: '  wall time', get: (m) => m.wallSec, fmt: formatDuration });
  return rows;
}

/**
 * Runs side by side: one column per run (headed by its policy, `+autoscale`
 * on a second line when on), and after each run but the first a ratio column
 * headed `÷ <first run>` (`÷ first` when the table would pass 100 columns)
 * holding that run's value divided by the first run's: 0.50 is half the
 * first run's value, `—` is shown where the first run's value is 0. Ratios
 * are taken on the exact values, not the rounded ones shown. What all runs
 * share (trace, fleet, tiers, seed) is printed once above the table; what
 * differs gets a row.
 */
export function formatCompare(runs: SimMetrics[]): string {
  const first = runs[0];
  if (!first) return '(no runs to compare)\n';
  const heads = headings(runs);
  const firstHead = heads[0] as [string, string];
  const firstLabel = runLabel(first);

  const shared: string[] = [];
  const differing: string[][] = [];
  const fields: Array<[string, (m: SimMetrics) => string]> = [
    ['trace', (m) => m.trace],
    ['fleet', (m) => m.fleet],
    ['tiers', (m) => m.tierRule],
    ['seed', (m) => String(m.seed)],
  ];
  for (const [name, get] of fields) {
    const values = runs.map(get);
    if (values.every((v) => v === values[0])) shared.push(`${name} ${values[0]}`);
    else differing.push([name, ...values]);
  }

  // Column order: run 1, run 2, ÷ run 1, run 3, ÷ run 1, …
  const render = (ratioHead: [string, string]): string => {
    const head1 = ['', firstHead[0]];
    const head2 = ['', firstHead[1]];
    for (let i = 1; i < runs.length; i++) {
      const h = heads[i] as [string, string];
      head1.push(h[0], ratioHead[0]);
      head2.push(h[1], ratioHead[1]);
    }

    const withRatios = (cells: string[], ratios: string[]): string[] => {
      const row = [cells[0] as string, cells[1] as string];
      for (let i = 1; i < runs.length; i++) row.push(cells[i + 1] as string, ratios[i - 1] ?? '');
      return row;
    };

    const rows: string[][] = head2.some((c) => c !== '') ? [head1, head2] : [head1];
    for (const [name, ...values] of differing) rows.push(withRatios([name as string, ...values], []));
    for (const r of compareRows()) {
      if (typeof r === 'string') {
        rows.push([r]);
        continue;
      }
      const values = runs.map(r.get);
      const base = values[0] as number;
      rows.push(
        withRatios(
          [r.label, ...values.map(r.fmt)],
          values.slice(1).map((v) => formatRatio(v, base)),
        ),
      );
    }
    return table(rows);
  };
  // `÷ <first run>` when the table fits the width, else the shorter `÷ first`.
  let body = render([`÷ ${firstHead[0]}`, firstHead[1]]);
  if (runs.length > 1 && body.split('\n').some((l) => l.length > WIDTH)) body = render(['÷ first', '']);

  const notes = [wrap(shared)];
  if (runs.length > 1) notes.push(`÷ columns: the run to the left ÷ the first run, ${firstLabel} (below 1: less)`);
  return `${notes.filter(Boolean).join('\n')}\n\n${body}\n`;
}
