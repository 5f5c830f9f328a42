/**
 * The built-in dashboard (/dashboard), end to end in headless Chromium: the page loads cleanly, follows
 * real traffic, streams a playground reply, fits a phone and does not shift; its JSON equals /metrics;
 * --api-key guards the data (and the page asks for the key); --no-dashboard removes it; with several
 * models, `?model=` (and the page's selector) shows each model's own numbers.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseConfig } from '../src/config/config.js';
import { writeDemoModel } from '../src/demo-model/demo-model.js';
import { quantile } from '../src/dashboard/read.js';
import type { DashboardData } from '../src/dashboard/routes.js';
import { buildNvmlStub } from './helpers/nvml-stub.js';
import { scrape, value } from './helpers/prom.js';
import { startServer, waitAllWorkers, waitIdle, type TestServer } from './helpers/server.js';

// Callbacks passed to page.evaluate() run in Chromium; this TypeScript has no DOM lib, so these are declared here.
declare const window: any, document: any, sessionStorage: any, PerformanceObserver: any;

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasChromium = fs.existsSync(CHROMIUM);
if (!hasChromium) {
  console.warn(
    `SKIPPED LOUDLY: ${CHROMIUM} is missing (apt-get install chromium; .ci/run installs it): the dashboard's browser tests did not run`,
  );
}
const hasGcc = !spawnSync('gcc', ['--version']).error;
const SCRIPT = 'Hello, world! 你好，世界。 Héllo again.';
const KEY = 'dashboard-test-key';
const SECRET_MODEL = 'secret-model-id';
const ARTIFACTS = path.resolve('test-artifacts');

let dir: string;
let main: TestServer;
let keyed: TestServer;
let off: TestServer;
let browser: BrowserContext | undefined;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-serve-dashboard-'));
  // The keyed server also gets two fake GPUs (the NVML stub), so the GPU panel is exercised.
  const gpu = hasGcc ? ['--nvml-library', buildNvmlStub(dir)] : [];
  const gpuEnv = { NVML_STUB_DEVICE_COUNT: '2', NVML_STUB_NAME_0: 'NVIDIA H200', NVML_STUB_UTIL_0: '37', NVML_STUB_UTIL_1: '5' };
  [main, keyed, off, browser] = await Promise.all([
    startServer(['--workers', '2', '--sequences', '2']),
    startServer(['--api-key', KEY, '--model-id', SECRET_MODEL, ...gpu], { env: gpuEnv }),
    startServer(['--no-dashboard']),
    hasChromium
      ? chromium.launchPersistentContext(path.join(dir, 'profile'), {
          executablePath: CHROMIUM,
          headless: true,
          viewport: { width: 1280, height: 900 },
          args: [
            '--headless',
            '--no-sandbox',
            '--disable-gpu',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
          ],
        })
      : undefined,
  ]);
  // The worker table and the workers tile expect both of main's workers.
  await waitAllWorkers(main.url);
}, 120_000); // three servers and Chromium start together: slow on two busy cores

afterAll(async () => {
  await browser?.close();
  const codes = await Promise.all([main, keyed, off].map((s) => s?.stop()));
  fs.rmSync(dir, { recursive: true, force: true });
  expect(codes).toEqual([0, 0, 0]);
});

/**
 * A fresh tab that records, from the start, console errors, page errors, layout shifts, and the
 * Authorization header of each request it sends (in order).
 */
async function open(url: string, query = ''): Promise<{ page: Page; errors: string[]; sent: Promise<[string, string]>[] }> {
  const page = await browser!.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  const sent: Promise<[string, string]>[] = [];
  page.on('request', (r) => {
    const route = new URL(r.url()).pathname;
    // A request still in flight when the tab closes has no headers to give: never an unhandled rejection.
    sent.push(
      r.allHeaders().then(
        (h) => [route, h.authorization ?? ''],
        () => [route, '(unknown)'],
      ),
    );
  });
  await page.addInitScript(() => {
    window.shifts = [];
    new PerformanceObserver((list: any) => {
      for (const e of list.getEntries()) if (!e.hadRecentInput) window.shifts.push({ value: e.value, at: e.startTime });
    }).observe({ type: 'layout-shift', buffered: true });
  });
  await page.goto(`${url}/dashboard${query}`);
  return { page, errors, sent };
}

const text = (page: Page, selector: string) => page.locator(selector).textContent();
/** Values of a uPlot series as the page holds them. */
const series = (page: Page, chart: string, index: number): Promise<(number | null)[]> =>
  page.evaluate(([c, i]) => window.qwenDashboard.charts[c].u.data[i], [chart, index] as const);
const positive = (values: (number | null)[]) => values.some((v) => v !== null && v > 0);

const getData = async (url: string, query = ''): Promise<DashboardData> =>
  (await (await fetch(`${url}/dashboard/data${query}`)).json()) as DashboardData;

/** n generation requests, half chat and half completions, four at a time. */
async function traffic(url: string, n: number): Promise<void> {
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'x', maxRetries: 0 });
  const model = path.basename(inject('tinyModel'), '.gguf'); // the served id: the file name
  for (let i = 0; i < n; i += 4) {
    await Promise.all(
      Array.from({ length: Math.min(4, n - i) }, (_, j) =>
        j % 2
          ? client.chat.completions.create({ model, messages: [{ role: 'user', content: `hello ${i + j}` }], temperature: 0 })
          : client.completions.create({ model, prompt: `count ${i + j}`, max_tokens: 8, temperature: 0 }),
      ),
    );
  }
}

describe.skipIf(!hasChromium)('the page in headless Chromium', () => {
  let page: Page;
  let errors: string[];

  it('loads with no console error, and its numbers and charts follow the traffic without shifting the layout', async () => {
    ({ page, errors } = await open(main.url));
    await page.waitForSelector('#status[data-state="live"]');
    await page.waitForFunction(() => document.getElementById('v-requests')!.textContent !== '—');
    expect(await text(page, '#v-requests')).toBe('0');
    expect(positive(await series(page, 'throughput', 1))).toBe(false);
    const settled = await page.evaluate(() => performance.now());

    await traffic(main.url, 8);
    await waitIdle(main.url);
    const total = value(await scrape(main.url), 'qwen_inference_request_total');
    expect(total).toBe(8);
    await page.waitForFunction((n) => document.getElementById('v-requests')!.textContent === String(n), total, { timeout: 10_000 });
    await page.waitForFunction(() => document.getElementById('v-ttft-p50')!.textContent !== '—', null, { timeout: 10_000 });

    expect(positive(await series(page, 'throughput', 1)), 'requests/s').toBe(true);
    expect(positive(await series(page, 'throughput', 2)), 'tokens/s').toBe(true);
    expect(positive(await series(page, 'latency', 1)), 'latency p50').toBe(true);
    expect(positive(await series(page, 'latency', 3)), 'first token p50').toBe(true);
    expect(positive(await series(page, 'batching', 1)), 'tokens per step').toBe(true);
    expect(positive(await series(page, 'batching', 2)), 'sequences per step').toBe(true);
    expect(positive(await series(page, 'batching', 3)), 'step time').toBe(true);
    expect(await text(page, '#v-latency-p50')).toMatch(/^\d+(\.\d+)? (ms|s)$/);
    expect(Number((await text(page, '#v-tokens'))!.replace(/,/g, ''))).toBeGreaterThan(0);
    const stop = page.locator('#outcomes tr', { hasText: 'finished: stop' }).locator('td');
    expect(Number(await stop.nth(2).textContent())).toBe(
      value(await scrape(main.url), 'qwen_requests_finished_total', { finish_reason: 'stop' }),
    );
    expect(await page.locator('#workers tr').allTextContents()).toEqual([
      expect.stringMatching(/^tiny0ready/),
      expect.stringMatching(/^tiny1ready/),
    ]);
    expect(await page.locator('#gpu-none').isVisible()).toBe(true);

    const shifts: { value: number }[] = await page.evaluate((after) => window.shifts.filter((s: { at: number }) => s.at > after), settled);
    expect(
      shifts.reduce((s, x) => s + x.value, 0),
      JSON.stringify(shifts),
    ).toBeLessThan(0.001);
    expect(errors).toEqual([]);
  });

  it('the playground streams a reply with its time to first token and tokens/s, by keyboard alone', async () => {
    // Keyboard only: the skip link, then Tab into the message box, type, Enter.
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Skip to the playground');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('chat-input');
    await expect.poll(() => page.getByLabel('Message').evaluate((el) => el === document.activeElement)).toBe(true);
    await page.keyboard.type('Hi there');
    await page.keyboard.press('Enter');

    const reply = page.locator('.msg.assistant').last();
    await reply.and(page.locator('[data-state="done"]')).waitFor({ timeout: 15_000 });
    expect(await reply.locator('.text').textContent()).toBe(SCRIPT);
    const stats = reply.locator('.stats');
    expect(Number(await stats.getAttribute('data-ttft-ms'))).toBeGreaterThan(0);
    expect(Number(await stats.getAttribute('data-tokens-per-second'))).toBeGreaterThan(0);
    expect(await stats.textContent()).toMatch(/^first token \d+(\.\d+)? (ms|s) · \d+ tokens · \d+(\.\d+)? tokens\/s$/);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('chat-input');

    // The chat request is API traffic: the page shows it within a sample or two.
    const total = value(await scrape(main.url), 'qwen_inference_request_total');
    await page.waitForFunction((n) => document.getElementById('v-requests')!.textContent === String(n), total, { timeout: 10_000 });
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png'), fullPage: true });
    if (process.env.UPDATE_SCREENSHOT === '1') fs.copyFileSync(path.join(ARTIFACTS, 'dashboard.png'), 'docs/dashboard.png');

    // Phone width: once the charts have followed their narrower containers (their ResizeObserver), nothing
    // scrolls sideways.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForFunction(
      () =>
        window.innerWidth === 390 &&
        [...document.querySelectorAll('.uplot')].every((u: any) => u.getBoundingClientRect().width <= u.parentElement.clientWidth),
      undefined,
      { timeout: 10_000 },
    );
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-phone.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('with --api-key: asks for the key, keeps it in sessionStorage, and sends it on the data and chat requests', async () => {
    const { page: p, errors: errs, sent } = await open(keyed.url);
    await p.waitForSelector('#status[data-state="key"]');
    expect(await p.locator('#key-form').isVisible()).toBe(true);
    expect(await text(p, '#model-select')).not.toContain(SECRET_MODEL);
    await p.getByLabel('API key').fill(KEY);
    await p.getByLabel('API key').press('Enter');
    await p.waitForSelector('#status[data-state="live"]');
    expect(await text(p, '#model-select')).toContain(SECRET_MODEL);
    expect(await p.evaluate(() => sessionStorage.getItem('qwen-serve.apiKey'))).toBe(KEY);
    if (hasGcc) {
      expect(await p.locator('#gpus tr').count()).toBe(2);
      expect(await text(p, '#gpus')).toContain('NVIDIA H200');
      expect(await p.locator('#gpu-figure').isVisible()).toBe(true);
    }

    await p.getByLabel('Message').fill('Hello');
    await p.getByRole('button', { name: 'Send' }).click();
    const reply = p.locator('.msg.assistant').last();
    await reply.and(p.locator('[data-state="done"]')).waitFor({ timeout: 15_000 });
    expect(await reply.locator('.text').textContent()).toBe(SCRIPT);
    const auth = await Promise.all(sent);
    const of = (route: string) => auth.filter(([r]) => r === route).map(([, h]) => h);
    expect(of('/v1/chat/completions')).toEqual([`Bearer ${KEY}`]);
    const polls = of('/dashboard/data');
    expect(polls[0]).toBe(''); // the first poll, before the key was known
    expect(polls.length).toBeGreaterThan(1);
    expect(polls.slice(1).every((h) => h === `Bearer ${KEY}`)).toBe(true);
    // The one expected error: the browser reports the first poll's 401.
    expect(errs.filter((e) => !/status of 401/.test(e))).toEqual([]);
    await p.close();
  });
});

describe('/dashboard/data', () => {
  it('equals /metrics: totals, finish reasons, workers; its rates add up to the totals', async () => {
    await traffic(main.url, 4);
    await waitIdle(main.url);
    const after = Date.now();
    let data!: DashboardData;
    await expect.poll(async () => (data = await getData(main.url)).sampledAt, { timeout: 10_000, interval: 200 }).toBeGreaterThan(after);
    const s = await scrape(main.url);
    const totals = data.totals!;
    expect(totals.requests).toBe(value(s, 'qwen_inference_request_total'));
    expect(totals.promptTokens).toBe(value(s, 'qwen_prompt_tokens_total'));
    expect(totals.generationTokens).toBe(value(s, 'qwen_generation_tokens_total'));
    expect(totals.draftTokens).toBe(value(s, 'qwen_spec_decode_draft_tokens_total'));
    expect(totals.acceptedTokens).toBe(value(s, 'qwen_spec_decode_accepted_tokens_total'));
    for (const reason of ['stop', 'length', 'abort', 'error'] as const) {
      expect(totals.finished[reason], reason).toBe(value(s, 'qwen_requests_finished_total', { finish_reason: reason }));
    }
    expect(data.workers.ready).toBe(value(s, 'qwen_workers_ready'));
    expect(data.workers.list.map((w) => w.state)).toEqual(['ready', 'ready']);
    expect(data.current!.capacity).toBe(value(s, 'qwen_sequences_capacity'));
    expect(data.current!.running).toBe(0);
    // Rates are counter deltas over each interval: summed back they give the totals (the first sample,
    // taken at start, saw no request).
    const points = data.history;
    const integrate = (f: (p: (typeof points)[number]) => number | null) =>
      points.slice(1).reduce((sum, p, i) => sum + f(p)! * ((p.t - points[i]!.t) / 1000), 0);
    expect(points[0]!.requestsPerSecond).toBeNull();
    expect(integrate((p) => p.requestsPerSecond)).toBeCloseTo(totals.requests, 6);
    expect(integrate((p) => p.generationTokensPerSecond)).toBeCloseTo(totals.generationTokens, 6);
    expect(integrate((p) => p.draftTokensPerSecond)).toBeCloseTo(totals.draftTokens, 6);
    expect(integrate((p) => p.acceptedTokensPerSecond)).toBeCloseTo(totals.acceptedTokens, 6);
    // No acceptance without draft tokens to accept (the page's "—").
    if (totals.draftTokens === 0) expect(points.map((p) => p.draftAcceptanceRatio)).toEqual(points.map(() => null));
    const since = await getData(main.url, `?since=${points.at(-2)!.t}`);
    expect(since.history.map((p) => p.t)).toEqual([points.at(-1)!.t]);
  });

  it('is not counted as API traffic, nor are the page and its assets', async () => {
    const before = value(await scrape(main.url), 'qwen_inference_request_total');
    for (const route of [
      '/dashboard',
      '/dashboard/data',
      '/dashboard/assets/dashboard.js',
      '/dashboard/assets/uPlot.iife.min.js',
      '/dashboard/assets/eventsource-parser.js',
    ]) {
      const res = await fetch(`${main.url}${route}`);
      expect(res.status, route).toBe(200);
      await res.arrayBuffer();
    }
    expect(value(await scrape(main.url), 'qwen_inference_request_total')).toBe(before);
  });

  it('with --api-key: 401 without the right key; the page and assets stay open and hold no data', async () => {
    const page = await fetch(`${keyed.url}/dashboard`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(await page.text()).not.toContain(SECRET_MODEL);
    expect((await fetch(`${keyed.url}/dashboard/assets/dashboard.js`)).status).toBe(200);
    for (const headers of [{}, { authorization: 'Bearer wrong' }] as Record<string, string>[]) {
      const res = await fetch(`${keyed.url}/dashboard/data`, { headers });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_api_key');
    }
    const ok = await fetch(`${keyed.url}/dashboard/data`, { headers: { authorization: `Bearer ${KEY}` } });
    expect(ok.status).toBe(200);
    const data = (await ok.json()) as DashboardData;
    expect(data.model).toBeNull();
    expect(data.models).toEqual([{ id: SECRET_MODEL, kind: 'generate' }]);
    if (hasGcc)
      expect(data.gpus.map((g) => [g.device, g.utilizationRatio])).toEqual([
        ['cuda:0', 0.37],
        ['cuda:1', 0.05],
      ]);
  });

  it('with --no-dashboard (or QWEN_NO_DASHBOARD=1) both routes are 404', async () => {
    for (const route of ['/dashboard', '/dashboard/data', '/dashboard/assets/dashboard.js']) {
      const res = await fetch(`${off.url}${route}`);
      expect(res.status, route).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unknown_route');
    }
    const config = (argv: string[], env: NodeJS.ProcessEnv = {}) => (parseConfig(argv, env) as { config: { dashboard: boolean } }).config;
    expect(config([]).dashboard).toBe(true);
    expect(config(['--no-dashboard']).dashboard).toBe(false);
    expect(config([], { QWEN_NO_DASHBOARD: '1' }).dashboard).toBe(false);
    expect(config([], { QWEN_NO_DASHBOARD: 'false' }).dashboard).toBe(true);
  });
});

describe('percentiles', () => {
  it('interpolate inside the bucket like histogram_quantile()', () => {
    const le = [0.1, 0.5, 1, Infinity];
    expect(quantile(0.5, { le, counts: [0, 10, 10, 10] })).toBeCloseTo(0.3);
    expect(quantile(0.5, { le, counts: [4, 4, 4, 4] })).toBeCloseTo(0.05); // first bucket: from 0
    expect(quantile(0.99, { le, counts: [0, 0, 1, 2] })).toBe(1); // in +Inf: the highest finite bound
    expect(quantile(0.5, { le, counts: [0, 0, 0, 0] })).toBeNull();
  });
});

/**
 * Three models: a bare --model (the tiny demo, id `tiny`: its file name), `chat` (the same file) and `embed` (a
 * demo embedding model). Chats go to `chat`, embeddings to `embed`: each model's view counts exactly its own.
 */
describe('several models: ?model= and the selector', () => {
  let two: TestServer;
  const usage = { chat: { requests: 0, prompt: 0, completion: 0 }, embed: { requests: 0, prompt: 0 } };

  beforeAll(async () => {
    const file = path.join(dir, 'embed.gguf');
    await writeDemoModel({ size: 'tiny', outPath: file, pooling: 'mean' });
    two = await startServer(['--model', inject('tinyModel'), '--model', `chat=${inject('tinyModel')}`, '--model', `embed=${file}`]);
    await waitAllWorkers(two.url);
  }, 120_000); // three models load side by side on two busy cores

  afterAll(async () => {
    expect(await two?.stop()).toBe(0);
  });

  /** Chats to `chat` and embeddings to `embed`, counting what the API answered. */
  async function twoKinds(chats: number, embeddings: number): Promise<void> {
    const client = new OpenAI({ baseURL: `${two.url}/v1`, apiKey: 'x', maxRetries: 0 });
    await Promise.all([
      ...Array.from({ length: chats }, async (_, i) => {
        const r = await client.chat.completions.create({
          model: 'chat',
          messages: [{ role: 'user', content: `hello ${i}` }],
          max_tokens: 6,
          temperature: 0,
        });
        expect(r.model).toBe('chat');
        usage.chat.requests++;
        usage.chat.prompt += r.usage!.prompt_tokens;
        usage.chat.completion += r.usage!.completion_tokens;
      }),
      ...Array.from({ length: embeddings }, async (_, i) => {
        const r = await client.embeddings.create({ model: 'embed', input: `some text ${i}` });
        usage.embed.requests++;
        usage.embed.prompt += r.usage.prompt_tokens;
      }),
    ]);
    await waitIdle(two.url);
  }

  /** The views of the whole server and of each model, all from one sample newer than `after`. */
  async function views(after: number): Promise<Record<'all' | 'tiny' | 'chat' | 'embed', DashboardData>> {
    let got!: Record<'all' | 'tiny' | 'chat' | 'embed', DashboardData>;
    await expect
      .poll(
        async () => {
          const [all, tiny, chat, embed] = await Promise.all(
            ['', '?model=tiny', '?model=chat', '?model=embed'].map((q) => getData(two.url, q)),
          );
          got = { all: all!, tiny: tiny!, chat: chat!, embed: embed! };
          const at = new Set(Object.values(got).map((d) => d.sampledAt));
          return at.size === 1 && all!.sampledAt! > after;
        },
        { timeout: 10_000, interval: 200 },
      )
      .toBe(true);
    return got;
  }

  it('each model counts exactly its own requests and tokens; the whole server is their sum', async () => {
    await twoKinds(3, 2);
    const v = await views(Date.now());
    const s = await scrape(two.url);
    expect(v.all.model).toBeNull();
    expect([v.tiny.model, v.chat.model, v.embed.model]).toEqual(['tiny', 'chat', 'embed']);
    for (const d of Object.values(v)) {
      expect(d.models).toEqual([
        { id: 'tiny', kind: 'generate' },
        { id: 'chat', kind: 'generate' },
        { id: 'embed', kind: 'embed' },
      ]);
    }
    const { chat, embed, tiny, all } = Object.fromEntries(Object.entries(v).map(([k, d]) => [k, d.totals!]));
    expect([chat!.requests, embed!.requests, tiny!.requests]).toEqual([3, 2, 0]);
    expect([chat!.promptTokens, chat!.generationTokens]).toEqual([usage.chat.prompt, usage.chat.completion]);
    expect(chat!.generationTokens).toBeGreaterThan(0);
    expect([embed!.promptTokens, embed!.generationTokens]).toEqual([usage.embed.prompt, 0]);
    expect([tiny!.promptTokens, tiny!.generationTokens]).toEqual([0, 0]);
    const sum = (f: (t: NonNullable<DashboardData['totals']>) => number) => [chat, embed, tiny].reduce((n, t) => n + f(t!), 0);
    expect(all!.requests).toBe(sum((t) => t.requests));
    expect(all!.requests).toBe(value(s, 'qwen_inference_request_total'));
    expect(all!.promptTokens).toBe(sum((t) => t.promptTokens));
    expect(all!.generationTokens).toBe(sum((t) => t.generationTokens));
    expect(all!.finished.stop).toBe(sum((t) => t.finished.stop));
    // Each model's history integrates to its own count.
    const integrate = (points: DashboardData['history']) =>
      points.slice(1).reduce((n, p, i) => n + p.requestsPerSecond! * ((p.t - points[i]!.t) / 1000), 0);
    expect(integrate(v.chat.history)).toBeCloseTo(3, 6);
    expect(integrate(v.embed.history)).toBeCloseTo(2, 6);
    // Each model's gauges and workers are its own; the GPUs are the server's.
    for (const id of ['tiny', 'chat', 'embed'] as const) {
      expect(v[id].current!.capacity, id).toBe(value(s, 'qwen_sequences_capacity', { model: id }));
      expect(v[id].workers.ready, id).toBe(value(s, 'qwen_workers_ready', { model: id }));
      expect(new Set(v[id].workers.list.map((w) => w.model))).toEqual(new Set([id]));
      expect(v[id].gpus).toEqual(v.all.gpus);
    }
    expect(v.all.current!.capacity).toBe(value(s, 'qwen_sequences_capacity'));
    expect(v.all.workers.list.map((w) => w.model)).toEqual(
      [...v.tiny.workers.list, ...v.chat.workers.list, ...v.embed.workers.list].map((w) => w.model),
    );
    // The embedding model generated nothing: no first-token time; request latency is the server's.
    expect(v.embed.current!.ttftP50).toBeNull();
    expect(v.chat.current!.ttftP50).toBeGreaterThan(0);
    expect(v.embed.current!.latencyP50).toBe(v.all.current!.latencyP50);
  });

  it('an unknown model is a 400 naming model; empty or `all` is the whole server', async () => {
    for (const query of ['?model=nope', '?model=chat&model=embed']) {
      const res = await fetch(`${two.url}/dashboard/data${query}`);
      expect(res.status, query).toBe(400);
      const body = (await res.json()) as { error: { type: string; param: string; message: string } };
      expect(body.error.type).toBe('invalid_request_error');
      expect(body.error.param).toBe('model');
    }
    const unknown = (await (await fetch(`${two.url}/dashboard/data?model=nope`)).json()) as { error: { message: string; code: string } };
    expect(unknown.error.code).toBe('model_not_found');
    expect(unknown.error.message).toMatch(/'nope'.*'tiny', 'chat', 'embed'/);
    for (const query of ['?model=', '?model=all']) expect((await getData(two.url, query)).model, query).toBeNull();
  });

  it.skipIf(!hasChromium)(
    'the page: a labelled selector kept in the URL, by keyboard; the playground chats with the model selected',
    async () => {
      const { page, errors } = await open(two.url, '?model=embed');
      await page.waitForSelector('#status[data-state="live"]');
      const select = page.getByLabel('Model', { exact: true });
      expect(await select.inputValue()).toBe('embed');
      expect(await select.locator('option').allTextContents()).toEqual([
        'All models',
        'tiny · text generation',
        'chat · text generation',
        'embed · embeddings',
      ]);
      const before = (await views(0)).embed.totals!.requests;
      await page.waitForFunction((n) => document.getElementById('v-requests')!.textContent === String(n), before, { timeout: 10_000 });
      expect(await page.locator('dt[data-server-wide]').allTextContents()).toEqual([
        'Latency p50 · all models',
        'Latency p95 · all models',
      ]);
      expect(new Set(await page.locator('#workers td.model').allTextContents())).toEqual(new Set(['embed']));
      // An embedding model cannot chat: the playground says it chats with the first text-generation model.
      expect(await text(page, '#chat-model')).toBe('tiny (the first text-generation model; embed is not one)');
      const settled = await page.evaluate(() => performance.now());

      // Keyboard: focus the selector and step up to `chat`; the URL follows, and so do the numbers.
      await select.focus();
      await page.keyboard.press('ArrowUp');
      await page.waitForURL(/\/dashboard\?model=chat$/);
      const chatRequests = (await views(0)).chat.totals!.requests;
      await page.waitForFunction((n) => document.getElementById('v-requests')!.textContent === String(n), chatRequests, {
        timeout: 10_000,
      });
      expect(new Set(await page.locator('#workers td.model').allTextContents())).toEqual(new Set(['chat']));
      expect(await text(page, '#chat-model')).toBe('chat');

      await page.getByLabel('Message').fill('Hi');
      await page.getByRole('button', { name: 'Send' }).click();
      const reply = page.locator('.msg.assistant').last();
      await reply.and(page.locator('[data-state="done"]')).waitFor({ timeout: 15_000 });
      expect(await reply.locator('.text').textContent()).toBe(SCRIPT);
      expect(await reply.getAttribute('data-model')).toBe('chat');
      expect(await text(page, '.msg.assistant .who')).toBe('Assistant · chat');
      await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-models.png'), fullPage: true });
      await page.waitForFunction((n) => document.getElementById('v-requests')!.textContent === String(n), chatRequests + 1, {
        timeout: 10_000,
      });

      // All models again: the URL drops the parameter, the tiles lose the marker and count every request.
      await page.keyboard.press('Shift+Tab');
      await select.selectOption('');
      await page.waitForURL((u) => u.search === '');
      // The URL changes at once; the labels with the next /dashboard/data answer.
      await expect
        .poll(() => page.locator('dt[data-server-wide]').allTextContents(), { timeout: 10_000 })
        .toEqual(['Latency p50', 'Latency p95']);
      const all = value(await scrape(two.url), 'qwen_inference_request_total');
      await page.waitForFunction((n) => document.getElementById('v-requests')!.textContent === String(n), all, { timeout: 10_000 });
      expect(await text(page, '#chat-model')).toBe('tiny (the first text-generation model)');

      const shifts: { value: number }[] = await page.evaluate(
        (after) => window.shifts.filter((s: { at: number }) => s.at > after),
        settled,
      );
      expect(
        shifts.reduce((n, x) => n + x.value, 0),
        JSON.stringify(shifts),
      ).toBeLessThan(0.001);
      expect(errors).toEqual([]);
      await page.close();
    },
  );
});
