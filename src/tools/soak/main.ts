#!/usr/bin/env node
/**
 * soak --url URL [--served-model ID] --duration SECONDS --concurrency N [...]
 *
 * Runs mixed traffic against a qwen-serve, then compares its own tally with the server's /metrics and
 * exits 1 on any loss, mismatch or unexpected error. Prints RSS over time. On a server with several models,
 * --served-model picks the one soaked (default: the first of kind `generate` in /v1/models); its requests
 * name it and its per-model counters are compared.
 */
import { Command, InvalidArgumentError } from 'commander';
import { ROUTES } from '../../http/route-table.js';
import { parseExposition, value, type Sample } from '../../metrics/exposition-parser.js';
import { seededRandom } from '../../shared/random.js';
import { resolveServedModel } from '../bench/served-model.js';
import { compare, Tally } from './tally.js';
import { ABORT_PROMPT, oneRequest, type TrafficOptions } from './traffic.js';

const positive = (what: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${what} must be a positive number`);
  return n;
};
const ratio = (v: string) => {
  const n = Number(v);
  if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError('must be between 0 and 1');
  return n;
};

const program = new Command('soak')
  .description('Soak a qwen-serve with mixed traffic and check its metrics against what the client saw')
  .option('--url <url>', 'server base URL', 'http://127.0.0.1:8080')
  .option('--served-model <id>', 'the model to soak (an id from /v1/models; default: the first generation model)')
  .option('--metrics-url <url>', 'where /metrics is served (default: --url)')
  .option('--duration <seconds>', 'how long to send traffic', positive('--duration'), 60)
  .option('--concurrency <n>', 'clients sending at once', positive('--concurrency'), 16)
  .option('--disconnect-rate <0..1>', 'share of requests that are streams the client abandons', ratio, 0.1)
  .option('--bad-rate <0..1>', 'share of requests that are deliberately invalid', ratio, 0.05)
  .option('--max-tokens <n>', 'max_tokens of ordinary requests (1..n)', positive('--max-tokens'), 48)
  .option('--disconnect-tokens <n>', 'max_tokens of abandoned streams', positive('--disconnect-tokens'), 1000)
  .option('--api-key <key>', 'bearer key, if the server needs one')
  .option('--seed <n>', 'seed of the request mix', positive('--seed'), 1);

interface Opts {
  url: string;
  servedModel?: string;
  metricsUrl?: string;
  duration: number;
  concurrency: number;
  disconnectRate: number;
  badRate: number;
  maxTokens: number;
  disconnectTokens: number;
  apiKey?: string;
  seed: number;
}

const auth = (o: Opts): Record<string, string> => (o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {});

async function scrape(o: Opts): Promise<Sample[]> {
  const res = await fetch(`${o.metricsUrl ?? o.url}${ROUTES.metrics.template}`, { headers: auth(o) });
  if (!res.ok) throw new Error(`GET /metrics: ${res.status}`);
  return parseExposition(await res.text());
}

async function waitIdle(o: Opts): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const h = (await (await fetch(`${o.url}${ROUTES.health.template}`)).json()) as { requests?: { running: number; waiting: number } };
    if (h.requests && h.requests.running === 0 && h.requests.waiting === 0) return;
    if (Date.now() > deadline) throw new Error('the server did not become idle within 60 s after the run');
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function main(): Promise<number> {
  const o = program.parse().opts<Opts>();
  const t = new Tally();
  const health = await fetch(`${o.url}${ROUTES.health.template}`).catch(() => undefined);
  if (!health?.ok) throw new Error(`${o.url}${ROUTES.health.template} is not ok: is the server up?`);
  const model = await resolveServedModel(o.url, o.servedModel, o.apiKey);
  await waitIdle(o);
  const before = await scrape(o);

  // The abandoned streams reuse one prompt, whose token count one ordinary request tells us.
  t.requests.completions++;
  const calib = (await (
    await fetch(`${o.url}${ROUTES.completions.template}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth(o) },
      body: JSON.stringify({ model, prompt: ABORT_PROMPT, max_tokens: 1 }),
    })
  ).json()) as { usage: { prompt_tokens: number; completion_tokens: number }; choices: { finish_reason: 'stop' | 'length' }[] };
  t.promptTokens += calib.usage.prompt_tokens;
  t.completionTokens += calib.usage.completion_tokens;
  t.finished[calib.choices[0]!.finish_reason]++;

  const random = seededRandom(o.seed);
  const traffic: TrafficOptions = { ...o, model, abortPromptTokens: calib.usage.prompt_tokens, random };
  const started = Date.now();
  const deadline = started + o.duration * 1000;
  const rss: { at: number; bytes: number }[] = [];
  const sampleRss = async () =>
    rss.push({ at: (Date.now() - started) / 1000, bytes: value(await scrape(o), 'process_resident_memory_bytes') });
  await sampleRss();
  const sampler = setInterval(() => void sampleRss().catch(() => {}), Math.max(1000, (o.duration * 1000) / 10));
  let sent = 0;
  const progress = setInterval(
    () => process.stderr.write(`\r${((Date.now() - started) / 1000).toFixed(0)} s, ${sent} requests, ${t.errors.length} errors`),
    1000,
  );
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      while (Date.now() < deadline) {
        await oneRequest(traffic, t);
        sent++;
      }
    }),
  );
  clearInterval(progress);
  clearInterval(sampler);
  process.stderr.write('\n');
  await waitIdle(o);
  await sampleRss();
  const after = await scrape(o);
  const diffs = compare(t, before, after, model);

  const seconds = (Date.now() - started) / 1000;
  console.log(
    `soak: ${sent} requests to ${model} in ${seconds.toFixed(1)} s from ${o.concurrency} clients (${(sent / seconds).toFixed(1)} req/s)`,
  );
  console.log(`client tally: ${JSON.stringify({ requests: t.requests, finished: t.finished, rejected: t.rejected })}`);
  console.log(
    `tokens: prompt ${t.promptTokens}, completion ${t.completionTokens} (+ abandoned streams: ${t.abortedChunks}..${t.abortedMaxTokens})`,
  );
  console.log(`server RSS (MiB) over time: ${rss.map((r) => `${r.at.toFixed(0)}s=${(r.bytes / 2 ** 20).toFixed(0)}`).join(' ')}`);
  console.log(`unexpected errors: ${t.errors.length}`);
  for (const e of t.errors.slice(0, 20)) console.log(`  ${e}`);
  if (diffs.length === 0) console.log('metrics match the client tally: nothing lost');
  for (const d of diffs) console.log(`MISMATCH ${d.what}: client ${d.client}, server ${d.server}`);
  const ok = diffs.length === 0 && t.errors.length === 0;
  console.log(ok ? 'soak: PASS' : 'soak: FAIL');
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`soak: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(2);
  },
);
