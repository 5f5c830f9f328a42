/**
 * The benchmark's outputs: a markdown table, a JSON document and an SVG chart drawn with Vega-Lite.
 *
 * Vega and Vega-Lite are development dependencies (20 MB that a server has no use for): they are loaded only
 * to draw the chart, so an installed bench (`npm ci --omit=dev`) runs and writes the table and the JSON.
 */
import type * as Vega from 'vega';
import type * as VegaLite from 'vega-lite';
import { percentiles, ratio, type LevelResult, type Percentiles } from './stats.js';
import type { StepFigures } from './steps.js';

export interface LevelReport {
  concurrency: number;
  results: LevelResult[];
  /** With --metrics-scrape: ours again while scraping, and the scrape times. */
  scraped?: { result: LevelResult; scrapeMs: Percentiles; scrapes: number; scrapeErrors: number };
  /** The server's own decode-step figures over this level's runs of --url (absent for other servers). */
  steps?: StepFigures;
}

export interface BenchReport {
  startedAt: string;
  settings: Record<string, unknown>;
  levels: LevelReport[];
}

const f = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '–');
const trio = (p: Percentiles) => `${f(p.p50)} / ${f(p.p95)} / ${f(p.p99)}`;

/** tokens/s of `a` over tokens/s of `b` at one level. */
function tokensRatio(level: LevelReport, a: string, b: string): number {
  const ra = level.results.find((r) => r.endpoint === a);
  const rb = level.results.find((r) => r.endpoint === b);
  return ra && rb ? ratio(ra.tokensPerSecond, rb.tokensPerSecond) : NaN;
}

export function markdown(report: BenchReport, ours: string): string {
  const lines = [
    '| endpoint | concurrency | requests/s | tokens/s | TTFT ms p50 / p95 / p99 | ITL ms p50 / p95 / p99 | end-to-end ms p50 / p99 | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const level of report.levels) {
    const rows = [...level.results, ...(level.scraped ? [{ ...level.scraped.result, endpoint: `${ours} + scraping` }] : [])];
    for (const r of rows) {
      lines.push(
        `| ${r.endpoint} | ${r.concurrency} | ${f(r.requestsPerSecond, 2)} | ${f(r.tokensPerSecond)} | ${trio(r.ttftMs)} | ${trio(r.itlMs)} | ${f(r.e2eMs.p50, 0)} / ${f(r.e2eMs.p99, 0)} | ${r.errors} |`,
      );
    }
  }
  const others = [...new Set(report.levels.flatMap((l) => l.results.map((r) => r.endpoint)))].filter((e) => e !== ours);
  const scraping = report.levels.some((l) => l.scraped);
  if (others.length > 0 || scraping) {
    const headers = [
      'concurrency',
      ...others.map((o) => `${ours} ÷ ${o} tokens/s`),
      ...(scraping ? ['scraping on ÷ off tokens/s', 'ITL p50 off ÷ on', 'scrape ms p50 / p99'] : []),
    ];
    lines.push('', `| ${headers.join(' | ')} |`, `|${headers.map(() => '---:|').join('')}`);
    for (const level of report.levels) {
      const cells = [String(level.concurrency), ...others.map((o) => f(tokensRatio(level, ours, o), 3))];
      if (scraping) {
        const base = level.results.find((r) => r.endpoint === ours);
        const s = level.scraped;
        cells.push(
          s && base ? f(ratio(s.result.tokensPerSecond, base.tokensPerSecond), 3) : '–',
          s && base ? f(ratio(base.itlMs.p50, s.result.itlMs.p50), 3) : '–',
          s ? `${f(s.scrapeMs.p50)} / ${f(s.scrapeMs.p99)}` : '–',
        );
      }
      lines.push(`| ${cells.join(' | ')} |`);
    }
  }
  if (report.levels.some((l) => l.steps)) {
    lines.push(
      '',
      `| concurrency | ${ours} decode steps | tokens per step | sequences per step | ms per step | ms per token |`,
      '|---:|---:|---:|---:|---:|---:|',
    );
    for (const { concurrency, steps: s } of report.levels) {
      if (!s) continue;
      lines.push(
        `| ${concurrency} | ${s.steps} | ${f(s.tokensPerStep, 2)} | ${f(s.sequencesPerStep, 2)} | ${f(s.msPerStep)} | ${f(s.msPerStep / s.tokensPerStep, 2)} |`,
      );
    }
  }
  return lines.join('\n') + '\n';
}

/** Why there is no chart, when the chart renderer is not installed. */
export const NO_CHART =
  'bench.svg not written: the chart renderer (vega, vega-lite) is a development dependency and is not installed here (npm ci installs it)';

const CHART_PACKAGES = /^Cannot find (?:package|module) '(?:vega|vega-lite)'/;

/** Vega and Vega-Lite, or undefined when they are not installed (any other failure to load them throws). */
async function chartRenderer(): Promise<{ vega: typeof Vega; vegaLite: typeof VegaLite } | undefined> {
  try {
    const [vega, vegaLite] = await Promise.all([import('vega'), import('vega-lite')]);
    return { vega, vegaLite };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND' && CHART_PACKAGES.test((err as Error).message)) return undefined;
    throw err;
  }
}

/** The chart as SVG, or undefined when the chart renderer is not installed (see NO_CHART). */
export async function chartSvg(report: BenchReport): Promise<string | undefined> {
  const renderer = await chartRenderer();
  if (!renderer) return undefined;
  const { vega, vegaLite } = renderer;
  const values = report.levels.flatMap((l) =>
    l.results.map((r) => ({ endpoint: r.endpoint, concurrency: r.concurrency, tokensPerSecond: r.tokensPerSecond, ttftMs: r.ttftMs.p50 })),
  );
  const x = { field: 'concurrency', type: 'quantitative', scale: { type: 'log', base: 2 }, title: 'concurrent requests' } as const;
  const color = { field: 'endpoint', type: 'nominal', title: 'endpoint' } as const;
  const spec: VegaLite.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values },
    hconcat: [
      {
        title: 'generated tokens/s',
        mark: { type: 'line', point: true },
        width: 320,
        height: 220,
        encoding: { x, y: { field: 'tokensPerSecond', type: 'quantitative', title: 'tokens/s' }, color },
      },
      {
        title: 'time to first token, p50',
        mark: { type: 'line', point: true },
        width: 320,
        height: 220,
        encoding: { x, y: { field: 'ttftMs', type: 'quantitative', title: 'ms', scale: { type: 'log' } }, color },
      },
    ],
  };
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  return view.toSVG();
}

export function scrapeSummary(times: number[]): Percentiles {
  return percentiles(times);
}
