/**
 * Charts of one or more simulator runs, for `scalar simulate`: GPU
 * utilisation over time, the queueing-delay CDF per tier, and the number of
 * jobs waiting over time. Each chart is a Vega-Lite spec rendered headless to
 * SVG by Vega (no DOM, no canvas) and, optionally, rasterised to PNG by resvg.
 *
 * Runs are told apart by colour (their label); the x axes are virtual time in
 * days, or the wait in hours on a symlog scale, so runs of different traces
 * or policies share one picture.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { JobOutcome, SimMetrics, Tier } from './types.ts';
import { TIERS } from '../domain/cluster.ts';

/** One run to draw: its legend label, its metrics (for the series) and its job outcomes (for the CDF). */
export interface ChartRun {
  label: string;
  metrics: SimMetrics;
  outcomes: JobOutcome[];
}

export interface ChartOptions {
  /** Also write a PNG (2× zoom) next to each SVG. Default true. */
  png?: boolean;
  /** Shown under each chart's title, e.g. the trace name. */
  title?: string;
}

const FONT = 'DejaVu Sans';
const WIDTH = 720;
const HEIGHT = 320;
/** Most points per CDF line (about 57 KB of SVG for 4 lines; 15,000 distinct waits would add ~0.5 MB). */
export const CDF_MAX_POINTS = 300;
/** The symlog constant, in hours: the wait axis is linear below one minute, logarithmic above. */
const SYMLOG_CONSTANT_H = 1 / 60;
/** Candidate wait-axis ticks in hours: 0, 1 min, 10 min, 1 h, 10 h, 100 h, 1000 h. */
const WAIT_TICKS_H = [0, 1 / 60, 10 / 60, 1, 10, 100, 1000, 10_000];

/** Shared look: the font resvg has (so the PNG has text), a white background, legends that fit long labels. */
const CONFIG = {
  font: FONT,
  background: 'white',
  title: { fontSize: 16, anchor: 'start' as const, subtitleFontSize: 12 },
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 12, titleFontSize: 12, labelLimit: 320 },
};

/**
 * Writes utilisation.svg, wait-cdf.svg and queue-length.svg (and a .png of
 * each unless `opts.png` is false) into `dir`, creating it if missing.
 * Returns the written paths, SVGs first.
 */
export async function renderCharts(runs: ChartRun[], dir: string, opts: ChartOptions = {}): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const charts: Array<[string, TopLevelSpec]> = [
    ['utilisation', utilisationSpec(runs, opts.title)],
    ['wait-cdf', waitCdfSpec(runs, opts.title)],
    ['queue-length', queueLengthSpec(runs, opts.title)],
  ];
  const svgs: string[] = [];
  const pngs: string[] = [];
  for (const [name, spec] of charts) {
    const svg = await toSvg(spec);
    const svgPath = join(dir, `${name}.svg`);
    await writeFile(svgPath, svg);
    svgs.push(svgPath);
    if (opts.png !== false) {
      const pngPath = join(dir, `${name}.png`);
      await writeFile(pngPath, toPng(svg));
      pngs.push(pngPath);
    }
  }
  return [...svgs, ...pngs];
}

/** Compiles Vega-Lite to Vega and renders it without a DOM. */
async function toSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

function toPng(svg: string): Buffer {
  const resvg = new Resvg(svg, {
    font: { loadSystemFonts: true, defaultFontFamily: FONT },
    fitTo: { mode: 'zoom', value: 2 },
  });
  return resvg.render().asPng();
}

function heading(text: string, subtitle: string | undefined): { text: string; subtitle?: string } {
  return subtitle ? { text, subtitle } : { text };
}

/** Colour by run label, in the order the runs were given. */
function runColour(runs: ChartRun[]) {
  return {
    field: 'run',
    type: 'nominal' as const,
    title: 'Run',
    scale: { domain: runs.map((r) => r.label) },
  };
}

type SeriesPoint = SimMetrics['series'][number];

/**
 * One line per run of a series field against virtual time in days. Drawn as
 * straight segments: the series is already down-sampled to buckets, and
 * steps would double the SVG's path size for no visible gain.
 */
function seriesSpec(
  runs: ChartRun[],
  title: { text: string; subtitle?: string },
  pick: (p: SeriesPoint) => number,
  y: { title: string; percent?: boolean },
): TopLevelSpec {
  const values = runs.flatMap((r) => r.metrics.series.map((p) => ({ run: r.label, days: p.t / 86_400, y: pick(p) })));
  return {
    title,
    width: WIDTH,
    height: HEIGHT,
    config: CONFIG,
    data: { values },
    mark: { type: 'line', strokeWidth: 1.5, strokeOpacity: 0.85 },
    encoding: {
      x: { field: 'days', type: 'quantitative', title: 'Virtual time (days)' },
      y: {
        field: 'y',
        type: 'quantitative',
        title: y.title,
        ...(y.percent ? { scale: { domain: [0, 1] }, axis: { format: '.0%' } } : {}),
      },
      color: runColour(runs),
    },
  };
}

/** Used / total GPUs over time, 0–100 %. */
export function utilisationSpec(runs: ChartRun[], subtitle?: string): TopLevelSpec {
  const title = heading('GPU utilisation over time', subtitle);
  return seriesSpec(runs, title, (p) => p.utilisation, { title: 'GPU utilisation', percent: true });
}

/** Jobs waiting (queued or pending) over time. */
export function queueLengthSpec(runs: ChartRun[], subtitle?: string): TopLevelSpec {
  return seriesSpec(runs, heading('Jobs waiting over time', subtitle), (p) => p.waitingJobs, { title: 'Jobs waiting' });
}

export interface CdfPoint {
  /** Wait in hours. */
  hours: number;
  /** Fraction of the jobs that waited at most `hours`. */
  fraction: number;
}

/**
 * The empirical CDF of `waitsSec` as at most `maxPoints` points: (0, 0), then
 * evenly spaced quantiles from the shortest wait to the longest. Each point's
 * fraction counts every job with a wait ≤ its x, so ties (many zero waits)
 * are exact. Waits are in seconds (≥ 0), x in hours.
 */
export function cdfPoints(waitsSec: number[], maxPoints = CDF_MAX_POINTS): CdfPoint[] {
  const sorted = [...waitsSec].sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return [];
  const k = Math.max(2, Math.min(n, maxPoints - 1));
  // Start at (0, 0): drawn step-after, the line rises where the first waits
  // are, and a tier with a single job still shows.
  const out: CdfPoint[] = [{ hours: 0, fraction: 0 }];
  let upTo = 0; // number of jobs with wait ≤ the current x, found by scanning forward
  let lastX = -1;
  for (let q = 0; q < k; q++) {
    const x = sorted[Math.round((q * (n - 1)) / (k - 1))] ?? 0;
    if (x === lastX) continue;
    lastX = x;
    while (upTo < n && sorted[upTo]! <= x) upTo++;
    out.push({ hours: x / 3600, fraction: upTo / n });
  }
  return out;
}

/**
 * Queueing delay (first start − submit) of the jobs that started, as a CDF
 * per tier (one panel each) with one line per run. The x axis is symlog in
 * hours: zero waits stay visible at 0 and minutes-to-days spread out evenly.
 */
export function waitCdfSpec(runs: ChartRun[], subtitle?: string): TopLevelSpec {
  const tiers = [...TIERS];
  const lines = runs.flatMap((r) =>
    tiers.map((tier) => {
      const waits = r.outcomes
        .filter((o) => o.tier === tier && o.firstStartSec !== null && !o.unschedulable)
        .map((o) => Math.max(0, (o.firstStartSec ?? o.submitSec) - o.submitSec));
      return { run: r.label, tier, points: cdfPoints(waits) };
    }),
  );
  const maxHours = Math.max(SYMLOG_CONSTANT_H, ...lines.map((l) => l.points.at(-1)?.hours ?? 0));
  // Every line runs on at 100% to the right edge, so a run whose waits end
  // early still reads as "all started by here" beside the others.
  const values = lines.flatMap(({ run, tier, points }) =>
    points.length === 0 ? [] : [...points, { hours: maxHours, fraction: 1 }].map((p) => ({ run, tier, ...p })),
  );
  return {
    title: heading('Queueing delay CDF', subtitle),
    config: CONFIG,
    data: { values },
    facet: { column: { field: 'tier', type: 'nominal', title: null, sort: tiers, header: { labelFontSize: 13 } } },
    resolve: { scale: { x: 'shared', y: 'shared' } },
    spec: {
      width: (WIDTH - 40) / 2,
      height: HEIGHT,
      mark: { type: 'line', strokeWidth: 1.5, interpolate: 'step-after' },
      encoding: {
        x: {
          field: 'hours',
          type: 'quantitative',
          title: 'Wait (hours; symlog scale, linear below 1 min)',
          scale: { type: 'symlog', constant: SYMLOG_CONSTANT_H, domain: [0, maxHours], nice: false },
          axis: {
            values: WAIT_TICKS_H.filter((h) => h <= maxHours),
            labelOverlap: false,
            labelExpr: "datum.value === 0 ? '0' : datum.value < 1 ? round(datum.value * 60) + ' min' : datum.value + ' h'",
          },
        },
        y: {
          field: 'fraction',
          type: 'quantitative',
          title: 'Fraction of jobs started within x',
          scale: { domain: [0, 1] },
          axis: { format: '.0%' },
        },
        color: runColour(runs),
      },
    },
  };
}
