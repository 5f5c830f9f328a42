/**
 * The monitoring stack end to end, with real components: qwen-serve on the tiny model, a real Prometheus
 * (configuration derived from prometheus.yml, 1 s intervals) with the repository's rules, a real
 * Alertmanager with monitoring/alertmanager.yml and monitoring/alert-webhook.mjs as its receiver.
 * - One instance (2 workers, GPU gauges from the NVML stub): after known traffic, every recording rule and
 *   every dashboard query answers, with values consistent with the traffic; the GPU memory alert (a device
 *   at 95%) and, once the server is stopped, the target-down alert fire and reach the webhook. The alerts
 *   are the repository's, with only `for:` shortened.
 * - Three replicas on three metrics ports, one Prometheus: the sum over instances equals the traffic sent
 *   to all three.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  dashboardQueries,
  derivePrometheusConfig,
  hasTool,
  readDashboard,
  recordingRules,
  RULES_DIR,
  startPrometheus,
  substitute,
  tempDir,
  until,
  warnMissing,
  type Prometheus,
  type QueryResult,
} from './helpers/monitoring.js';
import { buildNvmlStub } from './helpers/nvml-stub.js';
import { freePort, postJson, readSse, startServer, waitIdle, type TestServer } from './helpers/server.js';

const hasPrometheus = hasTool('prometheus');
const hasAlertmanager = hasTool('prometheus-alertmanager');
const hasGcc = hasTool('gcc');
if (!hasPrometheus) warnMissing('prometheus', 'prometheus', 'the monitoring end-to-end tests');
if (hasPrometheus && !hasAlertmanager) warnMissing('prometheus-alertmanager', 'prometheus-alertmanager', 'alert delivery to the webhook');
if (hasPrometheus && !hasGcc)
  console.warn('SKIPPED LOUDLY: gcc is not installed: no NVML stub, so the GPU panels and the GPU alert go unchecked');

const GiB = 1024 ** 3;
const num = (r: QueryResult) => Number(r.value[1]);
const ALERTS_FILE = path.join(RULES_DIR, 'qwen-serve-alerts.yml');
const RECORDING_FILE = path.join(RULES_DIR, 'qwen-serve-recording.yml');

/** The repository's alert rules with every `for:` shortened to 2 s (two evaluations at 1 s), nothing else changed. */
function shortenedAlerts(dir: string): string {
  const original = fs.readFileSync(ALERTS_FILE, 'utf8');
  const shortened = original.replace(/^(\s+)for: \S+$/gm, '$1for: 2s');
  const changed = original.split('\n').filter((line, i) => line !== shortened.split('\n')[i]);
  expect(changed.length).toBeGreaterThan(5);
  for (const line of changed) expect(line).toMatch(/^\s+for: \S+$/);
  const file = path.join(dir, 'qwen-serve-alerts.yml');
  fs.writeFileSync(file, shortened);
  return file;
}

interface Webhook {
  proc: ChildProcess;
  received: { status: string; alertname: string; labels: Record<string, string>; annotations: Record<string, string> }[];
}

async function startWebhook(port: number): Promise<Webhook> {
  const proc = spawn(process.execPath, ['monitoring/alert-webhook.mjs'], {
    env: { ...process.env, ALERT_WEBHOOK_HOST: '127.0.0.1', ALERT_WEBHOOK_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const hook: Webhook = { proc, received: [] };
  createInterface({ input: proc.stdout }).on('line', (line) => hook.received.push(JSON.parse(line) as Webhook['received'][number]));
  await until('the webhook receiver', async () => ((await fetch(`http://127.0.0.1:${port}/health`)).ok ? true : undefined), 10_000);
  return hook;
}

/** Alertmanager with monitoring/alertmanager.yml, its webhook pointed here and its waits shortened. */
async function startAlertmanager(dir: string, hookPort: number): Promise<{ proc: ChildProcess; address: string }> {
  const original = fs.readFileSync('monitoring/alertmanager.yml', 'utf8');
  const config = original
    .replace('http://alert-webhook:9095/alerts', `http://127.0.0.1:${hookPort}/alerts`)
    .replace('group_wait: 30s', 'group_wait: 1s')
    .replace('group_interval: 5m', 'group_interval: 1s');
  expect(config).toContain(`127.0.0.1:${hookPort}`);
  expect(config).toContain('group_wait: 1s');
  const file = path.join(dir, 'alertmanager.yml');
  fs.writeFileSync(file, config);
  const port = await freePort();
  const proc = spawn(
    'prometheus-alertmanager',
    [
      `--config.file=${file}`,
      `--storage.path=${path.join(dir, 'alertmanager-data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=',
    ],
    { stdio: 'ignore' },
  );
  await until('Alertmanager to be ready', async () => ((await fetch(`http://127.0.0.1:${port}/-/ready`)).ok ? true : undefined), 20_000);
  return { proc, address: `127.0.0.1:${port}` };
}

function stopProcess(proc: ChildProcess | undefined): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    proc.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    proc.kill('SIGTERM');
  });
}

describe.skipIf(!hasPrometheus)('one qwen-serve, Prometheus with the repository rules, Alertmanager', () => {
  let dir: string;
  let server: TestServer;
  let prom: Prometheus;
  let webhook: Webhook | undefined;
  let alertmanager: { proc: ChildProcess; address: string } | undefined;
  let instance: string;
  let model: string;
  const sent = { completions: 0, chat: 0, models: 0, invalid: 0, promptTokens: 0, completionTokens: 0, stop: 0, length: 0 };

  beforeAll(async () => {
    dir = tempDir('qwen-serve-mon-e2e-');
    const env: Record<string, string> = {};
    const args = ['--workers', '2', '--metrics-port', String(await freePort())];
    if (hasGcc) {
      // Two GPUs: cuda:0 at 95% of its memory (above the alert's 90%), cuda:1 at 1/6.
      Object.assign(env, {
        NVML_STUB_DEVICE_COUNT: '2',
        NVML_STUB_MEM_TOTAL_0: String(80 * GiB),
        NVML_STUB_MEM_USED_0: String(76 * GiB),
        NVML_STUB_UTIL_0: '64',
        NVML_STUB_NAME_0: 'NVIDIA H200',
        NVML_STUB_MEM_TOTAL_1: String(24 * GiB),
        NVML_STUB_MEM_USED_1: String(4 * GiB),
        NVML_STUB_UTIL_1: '12',
        NVML_STUB_NAME_1: 'NVIDIA L4',
      });
      args.push('--nvml-library', buildNvmlStub(path.join(dir, 'nvml')));
    }
    server = await startServer(args, { env });
    instance = new URL(server.metricsUrl!).host;
    model = ((await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string }[] }).data[0]!.id;
    sent.models++; // that request counts too
    if (hasAlertmanager) {
      const hookPort = await freePort();
      webhook = await startWebhook(hookPort);
      alertmanager = await startAlertmanager(dir, hookPort);
    }
    const configFile = path.join(dir, 'prometheus.yml');
    fs.writeFileSync(
      configFile,
      derivePrometheusConfig([instance], {
        ruleFiles: [path.resolve(RECORDING_FILE), shortenedAlerts(dir)],
        alertmanager: alertmanager?.address,
      }),
    );
    prom = await startPrometheus(configFile, dir);
    await until('the first scrape', async () => ((await prom.query('up{job="qwen-inference"}'))[0]?.value[1] === '1' ? true : undefined));
  });

  afterAll(async () => {
    await prom?.stop();
    await stopProcess(alertmanager?.proc);
    await stopProcess(webhook?.proc);
    await server?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers every recording rule and every dashboard query with values consistent with the traffic', async () => {
    const complete = async (i: number) => {
      const r = await postJson(`${server.url}/v1/completions`, { prompt: `question ${i}`, max_tokens: 8, temperature: 0 });
      expect(r.status).toBe(200);
      sent.completions++;
      sent.promptTokens += r.body.usage.prompt_tokens;
      sent.completionTokens += r.body.usage.completion_tokens;
      sent[r.body.choices[0].finish_reason as 'stop' | 'length']++;
    };
    const chat = async (i: number, stream: boolean) => {
      const body = { messages: [{ role: 'user', content: `hello ${i}` }], max_tokens: 32, temperature: 0 };
      if (stream) {
        const res = await fetch(`${server.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
        });
        expect(res.status).toBe(200);
        const events = (await readSse(res)) as any[];
        const usage = events.find((e) => e?.usage)!.usage;
        sent.promptTokens += usage.prompt_tokens;
        sent.completionTokens += usage.completion_tokens;
        sent[events.find((e) => e?.choices?.[0]?.finish_reason)!.choices[0].finish_reason as 'stop' | 'length']++;
      } else {
        const r = await postJson(`${server.url}/v1/chat/completions`, body);
        expect(r.status).toBe(200);
        sent.promptTokens += r.body.usage.prompt_tokens;
        sent.completionTokens += r.body.usage.completion_tokens;
        sent[r.body.choices[0].finish_reason as 'stop' | 'length']++;
      }
      sent.chat++;
    };

    // The workers' histograms (TTFT, inter-token latency, tokens per request) appear with the first
    // request: one request first, scraped, so that rate() sees the increase of the traffic that follows.
    await complete(-1);
    await until('the worker histograms to be scraped', async () =>
      (await prom.query('qwen_time_to_first_token_seconds_count and qwen_request_generation_tokens_count')).length === 1 ? true : undefined,
    );
    // And scraped once more before the traffic: two samples of the series without it.
    await until('a second scrape of the worker histograms', async () => {
      const r = await prom.query('count_over_time(qwen_time_to_first_token_seconds_count[1m])');
      return r.length === 1 && num(r[0]!) >= 2 ? true : undefined;
    });

    // Known traffic: completions cut at 8 tokens (length), chats that end by themselves (stop, the tiny
    // model's 10-token script), two of them streamed, invalid requests and model listings.
    for (let i = 0; i < 8; i++) await complete(i);
    for (let i = 0; i < 4; i++) await chat(i, i < 2);
    for (let i = 0; i < 3; i++) {
      expect((await postJson(`${server.url}/v1/completions`, { prompt: 'x', max_tokens: -1 })).status).toBe(400);
      sent.invalid++;
    }
    for (let i = 0; i < 2; i++) {
      expect((await fetch(`${server.url}/v1/models`)).status).toBe(200);
      sent.models++;
    }
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.stop).toBeGreaterThan(0);
    await waitIdle(server.url);

    // Prometheus has scraped everything, and the rules have been evaluated on it.
    const total = sent.completions + sent.chat + sent.invalid + sent.models;
    const seen = async () => Number((await prom.query('sum(qwen_inference_request_total)'))[0]?.value[1]);
    await until('Prometheus to see all the requests', async () => ((await seen()) === total ? true : undefined)).catch(
      async (err: Error) => {
        throw new Error(`${err.message}: sent ${total}, Prometheus has ${await seen()}`);
      },
    );
    // Every group evaluates after the last scrape, then once more, so rules that read another group's
    // records see them too.
    const scraped = Date.now();
    await prom.rulesEvaluatedAfter(scraped);
    await prom.rulesEvaluatedAfter(Date.now());
    const rate = await prom.query('job:qwen_inference_requests:rate5m');
    expect(rate.length === 1 && num(rate[0]!), 'job:qwen_inference_requests:rate5m').toBeGreaterThan(0);

    // The merged token counters equal what the API returned.
    expect(num((await prom.query('sum(qwen_generation_tokens_total)'))[0]!)).toBe(sent.completionTokens);
    expect(num((await prom.query('sum(qwen_prompt_tokens_total)'))[0]!)).toBe(sent.promptTokens);

    // Every recording rule answers, one series for this job and model (or endpoint).
    const rules = new Map<string, QueryResult[]>();
    for (const { record } of recordingRules()) {
      const r = await prom.query(record);
      expect(r.length, `${record} is empty`).toBeGreaterThan(0);
      for (const s of r) expect(s.metric.job, record).toBe('qwen-inference');
      rules.set(record, r);
    }
    const byEndpoint = (record: string, endpoint: string) => num(rules.get(record)!.find((s) => s.metric.endpoint === endpoint)!);
    const single = (record: string) => {
      const r = rules.get(record)!;
      expect(r, record).toHaveLength(1);
      if (!record.startsWith('job_endpoint') && !record.startsWith('job:')) expect(r[0]!.metric.model, record).toBe(model);
      return num(r[0]!);
    };
    for (const endpoint of ['/v1/completions', '/v1/chat/completions', '/v1/models']) {
      expect(byEndpoint('job_endpoint:qwen_inference_requests:rate1m', endpoint), endpoint).toBeGreaterThan(0);
    }
    expect(single('job:qwen_inference_requests:rate5m')).toBeGreaterThan(0);
    for (const q of ['p50', 'p95', 'p99']) {
      const v = byEndpoint(`job_endpoint:qwen_inference_duration_seconds:${q}_rate5m`, '/v1/completions');
      expect(v, q).toBeGreaterThan(0);
      expect(v, q).toBeLessThan(10);
    }
    expect(byEndpoint('job_endpoint:qwen_inference_duration_seconds:p50_rate5m', '/v1/completions')).toBeLessThanOrEqual(
      byEndpoint('job_endpoint:qwen_inference_duration_seconds:p99_rate5m', '/v1/completions'),
    );
    for (const record of [
      'job_model:qwen_time_to_first_token_seconds:p95_rate5m',
      'job_model:qwen_inter_token_latency_seconds:p95_rate5m',
    ]) {
      expect(single(record), record).toBeGreaterThan(0);
      expect(single(record), record).toBeLessThan(2.5);
    }
    expect(single('job_model:qwen_prompt_tokens:rate1m')).toBeGreaterThan(0);
    expect(single('job_model:qwen_generation_tokens:rate1m')).toBeGreaterThan(0);
    // No generation failed and nothing timed out: the error ratio is 0 (the 400s are the client's).
    expect(single('job_model:qwen_request_errors:ratio_rate5m')).toBe(0);
    // Idle now: nothing waits, nothing runs.
    expect(single('job_model:qwen_requests_waiting:sum')).toBe(0);
    expect(single('job_model:qwen_sequence_occupancy:ratio')).toBe(0);
    expect(rules.get('instance_model:qwen_sequence_occupancy:ratio')![0]!.metric.instance).toBe(instance);
    // The tiny model answers in milliseconds: no first token was slower than the SLO's 2.5 s.
    for (const w of ['5m', '30m', '1h', '6h']) expect(single(`job_model:qwen_time_to_first_token_slow:ratio_rate${w}`), w).toBe(0);

    // Every dashboard query, with Grafana's variables set to this instance and model, answers.
    const vars = { instance, model, rateInterval: '1m' };
    const results = new Map<string, QueryResult[]>();
    const spec = 'panel "Speculative decoding"';
    // Draft tokens/s over the panel's window (rateInterval): the acceptance rate has a value exactly when it is above 0.
    const drafted = num((await prom.query('sum(rate(qwen_spec_decode_draft_tokens_total[1m]))'))[0]!);
    for (const { where, expr } of dashboardQueries(readDashboard())) {
      if (where.startsWith('annotation')) continue; // ALERTS: checked below, once an alert fires
      const r = await prom.query(substitute(expr, vars));
      if (!hasGcc && where.startsWith('panel "GPU')) {
        expect(r, `${where}: no NVML, no GPU series`).toEqual([]);
        continue;
      }
      // The acceptance rate leaves out 0 ÷ 0.
      if (where === `${spec} A` && drafted === 0) {
        expect(r, `${where}: nothing drafted`).toEqual([]);
        continue;
      }
      expect(r.length, `${where} is empty: ${expr}`).toBeGreaterThan(0);
      results.set(where, r);
    }
    const panel = (where: string) => results.get(where)!;
    const series = (where: string, label: string, value: string) => num(panel(where).find((s) => s.metric[label] === value)!);
    for (const endpoint of ['/v1/completions', '/v1/chat/completions', '/v1/models']) {
      expect(series('panel "Request rate" A', 'endpoint', endpoint), endpoint).toBeGreaterThan(0);
    }
    expect(series('panel "Finish reasons" A', 'finish_reason', 'length')).toBeGreaterThan(0);
    expect(series('panel "Finish reasons" A', 'finish_reason', 'stop')).toBeGreaterThan(0);
    expect(series('panel "Finish reasons" A', 'finish_reason', 'error')).toBe(0);
    expect(series('panel "Errors and rejections" A', 'reason', 'invalid')).toBeGreaterThan(0);
    expect(series('panel "Errors and rejections" A', 'reason', 'queue_full')).toBe(0);
    expect(num(panel('panel "Errors and rejections" B')[0]!)).toBe(0);
    expect(num(panel('panel "Error ratio" A')[0]!)).toBe(0);
    for (const p of ['Time to first token (p50, p95, p99)', 'Inter-token latency (p50, p95, p99)', 'Queue wait (p50, p95, p99)']) {
      for (const ref of ['A', 'B', 'C']) expect(num(panel(`panel "${p}" ${ref}`)[0]!), `${p} ${ref}`).toBeGreaterThan(0);
    }
    expect(series('panel "Request latency (p50, p95, p99)" B', 'endpoint', '/v1/completions')).toBeGreaterThan(0);
    expect(num(panel('panel "Tokens per second" A')[0]!)).toBeGreaterThan(0);
    expect(num(panel('panel "Tokens per second" B')[0]!)).toBeGreaterThan(0);
    expect(num(panel('panel "Tokens per request (mean)" B')[0]!)).toBeGreaterThan(0);
    // Every step decodes at least one token of at least one sequence, and takes some time.
    const batch = 'panel "Decode batch per engine (tokens and sequences per step)"';
    expect(num(panel(`${batch} A`)[0]!)).toBeGreaterThanOrEqual(num(panel(`${batch} B`)[0]!));
    expect(num(panel(`${batch} B`)[0]!)).toBeGreaterThanOrEqual(1);
    for (const ref of ['A', 'B']) expect(num(panel(`panel "Decode step time per engine (p50, p99)" ${ref}`)[0]!)).toBeGreaterThan(0);
    // Draft tokens (and the accepted among them) exist at 0 from the start, drafting or not.
    expect(num(panel(`${spec} C`)[0]!)).toBeLessThanOrEqual(num(panel(`${spec} B`)[0]!));
    if (drafted > 0) expect(num(panel(`${spec} A`)[0]!)).toBeLessThanOrEqual(1);
    expect(num(panel('panel "Queue and running" A')[0]!)).toBe(0);
    expect(num(panel('panel "Queue and running" B')[0]!)).toBe(0);
    expect(num(panel('panel "Queue and running" C')[0]!)).toBe(16); // 2 workers x 8 sequences (the default)
    expect(num(panel('panel "Sequence occupancy" A')[0]!)).toBe(0);
    const kv = num(panel('panel "KV cache use" A')[0]!);
    expect(kv >= 0 && kv <= 1).toBe(true);
    expect(series('panel "Workers" A', 'instance', instance)).toBe(2);
    expect(series('panel "Workers" B', 'instance', instance)).toBe(0);
    expect(series('panel "Scrape health" A', 'instance', instance)).toBe(1);
    // One model, loaded at start and resident since.
    expect(series('panel "Resident models" A', 'model', model)).toBe(1);
    expect(num(panel('panel "Model load time" A')[0]!)).toBeGreaterThan(0);
    if (hasGcc) {
      const used = panel('panel "GPU memory per device" A');
      expect(Object.fromEntries(used.map((s) => [s.metric.device, num(s)]))).toEqual({ 'cuda:0': 76 * GiB, 'cuda:1': 4 * GiB });
      const share = panel('panel "GPU memory used" A');
      expect(Object.fromEntries(share.map((s) => [s.metric.device, num(s)]))).toEqual({ 'cuda:0': 0.95, 'cuda:1': 4 / 24 });
      const util = panel('panel "GPU utilisation per device" A');
      expect(Object.fromEntries(util.map((s) => [s.metric.name, num(s)]))).toEqual({ 'NVIDIA H200': 0.64, 'NVIDIA L4': 0.12 });
    }
  });

  it('fires the repository alerts (for: shortened) when their condition holds, and delivers them to the webhook', async () => {
    const firing = async () => (await prom.alerts()).filter((a) => a.state === 'firing');
    const quiet = [
      'QwenLatencyBudgetBurnFast',
      'QwenLatencyBudgetBurnSlow',
      'QwenErrorRatioHigh',
      'QwenQueueFull',
      'QwenQueueBacklog',
      'QwenNoWorkersReady',
      'QwenWorkersDegraded',
      'QwenWorkerRestarts',
      'QwenModelThrashing',
      'QwenTargetDown',
    ];
    if (hasGcc) {
      // A device at 95% of its memory: QwenGPUMemoryHigh fires for that device only.
      const gpu = await until('QwenGPUMemoryHigh to fire', async () => {
        const a = (await firing()).filter((x) => x.labels.alertname === 'QwenGPUMemoryHigh');
        return a.length > 0 ? a : undefined;
      });
      expect(gpu.map((a) => a.labels.device)).toEqual(['cuda:0']);
      expect(gpu[0]!.labels).toMatchObject({ instance, job: 'qwen-inference', severity: 'warning' });
      expect(gpu[0]!.annotations.summary).toBe(`${instance} cuda:0: GPU memory 95% used`);
      expect(gpu[0]!.annotations.runbook).toMatch(/^Check which processes hold the GPU/);
      // The dashboard's alert annotation query shows it.
      const annotation = dashboardQueries(readDashboard()).find((q) => q.where.startsWith('annotation'))!;
      const shown = await prom.query(substitute(annotation.expr, { instance, model }));
      expect(shown.map((s) => s.metric.alertname)).toContain('QwenGPUMemoryHigh');
      if (webhook) {
        const delivered = await until('the webhook to receive QwenGPUMemoryHigh', () =>
          webhook!.received.find((a) => a.alertname === 'QwenGPUMemoryHigh' && a.status === 'firing'),
        );
        expect(delivered.labels.device).toBe('cuda:0');
        expect(delivered.annotations.runbook).toBe(gpu[0]!.annotations.runbook);
      }
    }
    // Normal traffic on a healthy server fires none of the others.
    const names = (await firing()).map((a) => a.labels.alertname);
    for (const name of quiet) expect(names, name).not.toContain(name);

    // Stop the server: up == 0, QwenTargetDown fires for its instance and reaches the webhook.
    expect(await server.stop()).toBe(0);
    const down = await until(
      'QwenTargetDown to fire',
      async () => (await firing()).find((a) => a.labels.alertname === 'QwenTargetDown'),
      20_000,
    );
    expect(down.labels).toMatchObject({ instance, job: 'qwen-inference', severity: 'critical' });
    expect(down.annotations.summary).toBe(`Prometheus cannot scrape qwen-serve at ${instance}`);
    if (webhook) {
      const delivered = await until('the webhook to receive QwenTargetDown', () =>
        webhook!.received.find((a) => a.alertname === 'QwenTargetDown' && a.status === 'firing'),
      );
      expect(delivered.labels.instance).toBe(instance);
      expect(delivered.annotations.runbook).toMatch(/^Check that the process or pod runs/);
    }
  });
});

describe.skipIf(!hasPrometheus)('three replicas scraped by one Prometheus', () => {
  let dir: string;
  let servers: TestServer[] = [];
  let prom: Prometheus;

  beforeAll(async () => {
    dir = tempDir('qwen-serve-mon-replicas-');
    servers = await Promise.all([0, 1, 2].map(async () => startServer(['--workers', '1', '--metrics-port', String(await freePort())])));
    const targets = servers.map((s) => new URL(s.metricsUrl!).host);
    expect(new Set(targets).size).toBe(3);
    const configFile = path.join(dir, 'prometheus.yml');
    fs.writeFileSync(configFile, derivePrometheusConfig(targets, { ruleFiles: [path.resolve(RECORDING_FILE)] }));
    prom = await startPrometheus(configFile, dir);
    await until('all three targets up', async () => ((await prom.query('up{job="qwen-inference"} == 1')).length === 3 ? true : undefined));
  });

  afterAll(async () => {
    await prom?.stop();
    await Promise.all(servers.map((s) => s.stop()));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('sums the completions of all three instances into the traffic sent', async () => {
    const perServer = [5, 3, 2];
    await Promise.all(
      servers.map(async (s, i) => {
        for (let n = 0; n < perServer[i]!; n++) {
          const r = await postJson(`${s.url}/v1/completions`, { prompt: `replica ${i} request ${n}`, max_tokens: 4 });
          expect(r.status).toBe(200);
        }
        // Another endpoint, which must not count in the completions' sum.
        expect(
          (await postJson(`${s.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 })).status,
        ).toBe(200);
        await waitIdle(s.url);
      }),
    );
    const sent = perServer.reduce((a, b) => a + b, 0);
    const summed = await until('the sum over instances to reach the traffic', async () => {
      const r = await prom.query('sum without (instance) (qwen_inference_request_total{endpoint="/v1/completions"})');
      return r.length === 1 && num(r[0]!) === sent ? r : undefined;
    });
    expect(summed[0]!.metric).toEqual({ job: 'qwen-inference', method: 'POST', endpoint: '/v1/completions' });

    // Per instance, each counter holds its own share.
    const per = await prom.query('qwen_inference_request_total{endpoint="/v1/completions"}');
    expect(Object.fromEntries(per.map((s) => [s.metric.instance, num(s)]))).toEqual(
      Object.fromEntries(servers.map((s, i) => [new URL(s.metricsUrl!).host, perServer[i]])),
    );
    // Fleet-level recording rules aggregate the three: one series, capacity of all three.
    await until('the fleet request rate', async () => {
      const r = await prom.query('job_endpoint:qwen_inference_requests:rate1m{endpoint="/v1/completions"}');
      return r.length === 1 && num(r[0]!) > 0 ? true : undefined;
    });
    expect(num((await prom.query('sum(qwen_sequences_capacity)'))[0]!)).toBe(24); // 3 x 1 worker x 8 sequences (the default)
    expect((await prom.query('job_model:qwen_sequence_occupancy:ratio')).length).toBe(1);
    expect((await prom.query('instance_model:qwen_sequence_occupancy:ratio')).length).toBe(3);
    // The dashboard's instance variable (label_values(METRIC{model=~"$model"}, instance)) lists all three.
    const variable = readDashboard().templating.list.find((v) => v.name === 'instance')!;
    const selector = /^label_values\((.+), instance\)$/.exec((variable.query as { query: string }).query)![1]!;
    const res = await fetch(
      `${prom.url}/api/v1/label/instance/values?match[]=${encodeURIComponent(substitute(selector, { instance: '.*', model: '.*' }))}`,
    );
    const values = ((await res.json()) as { data: string[] }).data;
    expect(values.sort()).toEqual(servers.map((s) => new URL(s.metricsUrl!).host).sort());
    // With "All" instances selected, the dashboard's request rate covers the three.
    const all = await prom.query(
      substitute(readDashboard().panels.flatMap((p) => (p.title === 'Request rate' ? p.targets! : []))[0]!.expr, {
        instance: values.join('|'),
        model: '.*',
      }),
    );
    expect(num(all.find((s) => s.metric.endpoint === '/v1/completions')!)).toBeGreaterThan(0);
  });
});
