#!/usr/bin/env node
/**
 * bench --url URL [--served-model ID] [--compare URL] [--baseline direct --model PATH] [--concurrency 1,2,4,...]
 *
 * A sweep over concurrency with a fixed prompt and a fixed number of generated tokens (ignore_eos),
 * streamed. Endpoints run alternately, level by level, in the same run, so machine drift cancels out of
 * the ratios. Writes bench.md, bench.json and bench.svg (when the dev dependencies vega and vega-lite are
 * installed) to --out.
 *
 * bench --url URL --noisy all|KIND,… : the noisy-neighbour mode (noisy.ts) instead of the sweep.
 *
 * On a server with several models, --served-model picks the one benchmarked (default: the first of kind
 * `generate` in /v1/models); the requests name it, and the server's metrics are read for it alone.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DirectBaseline } from './direct.js';
import { resolveEndpoint, streamCompletion, type Endpoint } from './http-client.js';
import { HEAVY, noisyMarkdown, runNoisy } from './noisy.js';
import { chartSvg, markdown, NO_CHART, scrapeSummary, type BenchReport, type LevelReport } from './report.js';
import { Scraper } from './scrape.js';
import { addDelta, figures, readStepTotals, type StepTotals } from './steps.js';
import { percentile, summarize, type LevelResult, type RequestSample } from './stats.js';
import { runClients, WORKLOADS, type Workload, type WorkloadKind } from './workload.js';

const int = (what: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${what} must be a positive integer`);
  return n;
};
const list = (v: string) => {
  const levels = v.split(',').map(Number);
  if (levels.some((n) => !Number.isInteger(n) || n < 1))
    throw new InvalidArgumentError('must be a comma-separated list of positive integers');
  return levels;
};

const program = new Command('bench')
  .description('Benchmark OpenAI-compatible endpoints side by side over a concurrency sweep')
  .option('--url <url>', 'qwen-serve base URL', 'http://127.0.0.1:8080')
  .option('--name <name>', 'label of --url in the report', 'qwen-serve')
  .option(
    '--served-model <id>',
    'the model of --url to benchmark (an id from its /v1/models; default: the first generation model); its metrics alone are read',
  )
  .option('--compare <url>', 'a second OpenAI-compatible endpoint (llama-server, vLLM, …) run alternately with --url')
  .option('--compare-name <name>', 'label of --compare', 'compare')
  .option('--baseline <kind>', '"direct": the same workload through node-llama-cpp in this process (needs --model)')
  .option('--model <path>', 'GGUF file for --baseline direct (the one the server runs)')
  .option('--threads <n>', 'threads for --baseline direct (match the server)', int('--threads'), 2)
  .option('--sequences <n>', 'sequences for --baseline direct (match the server)', int('--sequences'), 4)
  .option('--context-size <n>', 'context per sequence for --baseline direct', int('--context-size'), 2048)
  .option('--batch-size <n>', 'batch size for --baseline direct', int('--batch-size'), 512)
  .option('--concurrency <list>', 'concurrency levels', list, [1, 2, 4, 8, 16, 32])
  .option('--prompt-tokens <n>', 'prompt length (tokens, approximately)', int('--prompt-tokens'), 64)
  .option('--gen-tokens <n>', 'generated tokens per request (ignore_eos)', int('--gen-tokens'), 128)
  .option('--requests <n>', 'requests per level (default: 2 × concurrency, at least 4)', int('--requests'))
  .option('--temperature <t>', 'sampling temperature', Number, 0)
  .addOption(
    new Option(
      '--workload <kind>',
      'plain: a fixed word list; copy: repeat a passage (speculation helps); free: a passage that never repeats, with repeat penalties',
    )
      .choices(WORKLOADS)
      .default('plain'),
  )
  .option('--rounds <n>', 'repeat each level this many times, rotating the endpoint order; tokens/s is the median', int('--rounds'), 1)
  .option('--metrics-scrape <seconds>', 'also run each level of --url while scraping /metrics on this interval', Number)
  .option(
    '--noisy <kinds>',
    `noisy-neighbour mode: normal traffic at the first --concurrency level, alone and beside a client looping each heavy kind (all, or: ${Object.keys(HEAVY).join(', ')})`,
  )
  .option('--api-key <key>', 'bearer key for --url')
  .option('--out <dir>', 'where bench.md, bench.json and bench.svg go', 'bench-results');

interface Opts {
  url: string;
  name: string;
  servedModel?: string;
  compare?: string;
  compareName: string;
  baseline?: string;
  model?: string;
  threads: number;
  sequences: number;
  contextSize: number;
  batchSize: number;
  concurrency: number[];
  promptTokens: number;
  genTokens: number;
  requests?: number;
  temperature: number;
  workload: WorkloadKind;
  rounds: number;
  metricsScrape?: number;
  noisy?: string;
  apiKey?: string;
  out: string;
}

type Runner = { name: string; run: (w: Workload) => Promise<RequestSample> };

function progress(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text}`);
  else process.stderr.write(`${text}\n`);
}

async function runLevel(runner: Runner, w: Workload, concurrency: number): Promise<RequestSample[]> {
  const total = w.requests(concurrency);
  return runClients(
    concurrency,
    total,
    () => runner.run(w),
    (n) => progress(`concurrency ${concurrency}: ${runner.name} ${n}/${total}`),
  );
}

/**
 * One endpoint's result at one level over all rounds: latency percentiles over every request, and the
 * median of the rounds' tokens/s (one slow round on a noisy machine does not decide the ratio).
 */
function combineRounds(
  name: string,
  concurrency: number,
  all: RequestSample[],
  rates: number[],
): LevelResult & { roundTokensPerSecond: number[] } {
  // Rounds ran one after another: the pooled wall time would include the other endpoints' turns.
  const pooled = summarize(name, concurrency, all);
  const median = percentile(rates, 50);
  const tokens = sumTokens(all);
  const ok = pooled.requests - pooled.errors;
  return {
    ...pooled,
    seconds: tokens / median,
    tokensPerSecond: median,
    requestsPerSecond: (median * ok) / Math.max(1, tokens),
    roundTokensPerSecond: rates,
  };
}

function sumTokens(samples: RequestSample[]): number {
  return samples.filter((s) => !s.error).reduce((n, s) => n + s.tokens, 0);
}

async function main(): Promise<void> {
  const o = program.parse().opts<Opts>();
  if (o.baseline !== undefined && o.baseline !== 'direct') throw new Error('--baseline takes "direct"');
  if (o.baseline === 'direct' && !o.model) throw new Error('--baseline direct needs --model PATH');
  const workload: Workload = {
    kind: o.workload,
    promptTokens: o.promptTokens,
    genTokens: o.genTokens,
    temperature: o.temperature,
    requests: (c) => o.requests ?? Math.max(4, 2 * c),
  };
  const http = (ep: Endpoint): Runner => ({ name: ep.name, run: (w) => streamCompletion(ep, w) });
  const ours = await resolveEndpoint(o.name, o.url, o.apiKey, o.servedModel);
  if (o.noisy !== undefined) return noisy(o, ours, workload);
  const runners: Runner[] = [http(ours)];
  if (o.compare) runners.push(http(await resolveEndpoint(o.compareName, o.compare)));
  let direct: DirectBaseline | undefined;
  if (o.baseline === 'direct') {
    direct = await DirectBaseline.load({
      modelPath: o.model!,
      threads: o.threads,
      sequences: o.sequences,
      contextSize: o.contextSize,
      batchSize: o.batchSize,
      gpu: 'auto',
    });
    const d = direct;
    runners.push({ name: 'direct', run: (w) => d.request(w) });
  }

  // Warm-up: one request each, so first-load effects (page cache, lazy allocations) stay out of level 1.
  for (const r of runners) await r.run({ ...workload, genTokens: 8 });

  const report: BenchReport = {
    startedAt: new Date().toISOString(),
    settings: { ...o, servedModel: ours.model, apiKey: o.apiKey ? '[set]' : undefined },
    levels: [],
  };
  for (const concurrency of o.concurrency) {
    const level: LevelReport = { concurrency, results: [] };
    // Rounds rotate the order of the endpoints, so neither always runs first (or right after a warm-up).
    const samples = new Map<string, RequestSample[]>(runners.map((r) => [r.name, []]));
    const roundRates = new Map<string, number[]>(runners.map((r) => [r.name, []]));
    const steps: StepTotals = { steps: 0, tokens: 0, sequences: 0, seconds: 0 };
    let hasSteps = false;
    for (let round = 0; round < o.rounds; round++) {
      for (let i = 0; i < runners.length; i++) {
        const r = runners[(i + round) % runners.length]!;
        const before = r.name === ours.name ? await readStepTotals(ours.url, ours.model, ours.apiKey) : undefined;
        const got = await runLevel(r, workload, concurrency);
        const after = before && (await readStepTotals(ours.url, ours.model, ours.apiKey));
        if (before && after) {
          addDelta(steps, before, after);
          hasSteps = true;
        }
        samples.get(r.name)!.push(...got);
        roundRates.get(r.name)!.push(summarize(r.name, concurrency, got).tokensPerSecond);
      }
    }
    for (const r of runners) level.results.push(combineRounds(r.name, concurrency, samples.get(r.name)!, roundRates.get(r.name)!));
    if (hasSteps) level.steps = figures(steps);
    if (o.metricsScrape) {
      const scraper = new Scraper(o.url, o.metricsScrape, o.apiKey);
      scraper.start();
      const got = await runLevel(http(ours), workload, concurrency);
      await scraper.stop();
      level.scraped = {
        result: summarize(`${ours.name} + scraping`, concurrency, got),
        scrapeMs: scrapeSummary(scraper.timesMs),
        scrapes: scraper.timesMs.length,
        scrapeErrors: scraper.errors,
      };
    }
    report.levels.push(level);
    progress(`concurrency ${concurrency}: ${level.results.map((r) => `${r.endpoint} ${r.tokensPerSecond.toFixed(1)} tok/s`).join(', ')}`);
  }
  if (process.stderr.isTTY) process.stderr.write('\n');
  await direct?.dispose();

  fs.mkdirSync(o.out, { recursive: true });
  const md = markdown(report, ours.name);
  fs.writeFileSync(path.join(o.out, 'bench.md'), md);
  fs.writeFileSync(path.join(o.out, 'bench.json'), JSON.stringify(report, null, 2));
  const svg = await chartSvg(report);
  if (svg !== undefined) fs.writeFileSync(path.join(o.out, 'bench.svg'), svg);
  console.log(md);
  console.log(`wrote ${path.join(o.out, 'bench.md')}, bench.json${svg !== undefined ? ' and bench.svg' : ''}`);
  if (svg === undefined) console.error(NO_CHART);
  const errors = report.levels.flatMap((l) => l.results).reduce((s, r) => s + r.errors, 0);
  if (errors > 0) console.log(`${errors} requests failed`);
}

/** The noisy-neighbour mode: writes noisy.md and noisy.json. */
async function noisy(o: Opts, ep: Endpoint, workload: Workload): Promise<void> {
  const kinds = o.noisy === 'all' ? Object.keys(HEAVY) : o.noisy!.split(',').map((k) => k.trim());
  const unknown = kinds.filter((k) => !(k in HEAVY));
  if (unknown.length > 0) throw new Error(`--noisy: unknown kind ${unknown.join(', ')} (known: ${Object.keys(HEAVY).join(', ')})`);
  await streamCompletion(ep, { ...workload, genTokens: 8 });
  const concurrency = o.concurrency[0]!;
  const rows = await runNoisy(ep, kinds, workload, concurrency, o.rounds, progress);
  if (process.stderr.isTTY) process.stderr.write('\n');
  fs.mkdirSync(o.out, { recursive: true });
  const md = noisyMarkdown(rows, concurrency, workload);
  fs.writeFileSync(path.join(o.out, 'noisy.md'), md);
  fs.writeFileSync(
    path.join(o.out, 'noisy.json'),
    JSON.stringify(
      { startedAt: new Date().toISOString(), settings: { ...o, servedModel: ep.model, apiKey: o.apiKey ? '[set]' : undefined }, rows },
      null,
      2,
    ),
  );
  console.log(md);
  console.log(`wrote ${path.join(o.out, 'noisy.md')} and noisy.json`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(2);
  },
);
