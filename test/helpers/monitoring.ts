/**
 * Shared helpers of the monitoring tests: YAML loading, the repository's rules and dashboard, the metric
 * names a PromQL expression uses, external tools (promtool, prometheus, amtool, Alertmanager) and a real
 * Prometheus started on a free port.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { ALL_METRICS, type MetricDef } from '../../src/metrics/definitions.js';
import { freePort } from './server.js';
import { until } from './until.js';

export const RULES_DIR = 'monitoring/rules';
export const RULE_TESTS_DIR = 'monitoring/tests';
const DASHBOARD = 'monitoring/grafana/dashboards/qwen-serve.json';
export const DOC = 'docs/monitoring.md';

/** Whether a command runs (`tool --version` exits without a spawn error). */
export function hasTool(tool: string): boolean {
  return !spawnSync(tool, ['--version'], { stdio: 'ignore' }).error;
}

/** A test file's loud skip: one warning line naming what is missing and how to install it. */
export function warnMissing(tool: string, pkg: string, what: string): void {
  console.warn(`SKIPPED LOUDLY: ${tool} is not installed (apt-get install ${pkg}; .ci/run installs it): ${what}`);
}

/** Runs a command to completion; output is stdout and stderr together. */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): { code: number; output: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: opts.env ?? process.env, cwd: opts.cwd, timeout: 60_000 });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}

export function readYaml<T = any>(file: string): T {
  return parseYaml(fs.readFileSync(file, 'utf8')) as T;
}

/** Every document of a (possibly multi-document) YAML file. */
export function readYamlDocuments(file: string): any[] {
  return parseAllDocuments(fs.readFileSync(file, 'utf8')).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
    return doc.toJS() as unknown;
  });
}

export interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
export interface RuleGroup {
  name: string;
  interval?: string;
  rules: Rule[];
}

/** The rule files of monitoring/rules, in name order. */
export function ruleFiles(): string[] {
  return fs
    .readdirSync(RULES_DIR)
    .filter((f) => f.endsWith('.yml') || f.endsWith('.yaml'))
    .sort()
    .map((f) => path.join(RULES_DIR, f));
}

/** Every rule group of monitoring/rules, file by file in name order. */
export function ruleGroups(): RuleGroup[] {
  return ruleFiles().flatMap((f) => readYaml<{ groups: RuleGroup[] }>(f).groups);
}

const allRules = (): Rule[] => ruleGroups().flatMap((g) => g.rules);
export const alertRules = (): (Rule & { alert: string })[] => allRules().filter((r): r is Rule & { alert: string } => !!r.alert);
export const recordingRules = (): (Rule & { record: string })[] => allRules().filter((r): r is Rule & { record: string } => !!r.record);

const HISTOGRAM_PARTS = /_(bucket|sum|count)$/;

/** The `qwen_*` metric names a PromQL expression selects (recording-rule names and quoted strings left out). */
export function qwenMetricsIn(expr: string): string[] {
  const unquoted = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  return [...new Set([...unquoted.matchAll(/(?<![\w:])(qwen_[a-z0-9_]+)(?![\w:])/g)].map((m) => m[1]!))];
}

/** The definition behind an exposed series name (a histogram's _bucket/_sum/_count included), if any. */
export function metricDefinition(series: string): MetricDef | undefined {
  const direct = ALL_METRICS.find((m) => m.name === series);
  if (direct) return direct;
  const base = series.replace(HISTOGRAM_PARTS, '');
  const histogram = ALL_METRICS.find((m) => m.name === base);
  return histogram?.kind === 'histogram' && base !== series ? histogram : undefined;
}

/** Series names in `expr` that docs/metrics.md (src/metrics/definitions.ts) does not define. */
export function unknownMetrics(expr: string): string[] {
  return qwenMetricsIn(expr).filter((name) => metricDefinition(name) === undefined);
}

// --- Grafana dashboard -----------------------------------------------------------------------------------

interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
  datasource?: { type: string; uid: string };
  /** Grafana also queries the target's exemplars and draws them as points. */
  exemplar?: boolean;
}
export interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  datasource?: { type: string; uid: string };
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: Target[];
  panels?: Panel[];
}
export interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown; definition?: string; includeAll?: boolean; multi?: boolean }[] };
  annotations: { list: { name: string; expr?: string; datasource?: { type: string; uid: string } }[] };
}

export const readDashboard = (): Dashboard => JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as Dashboard;

/** Every panel that shows data (rows left out; panels inside collapsed rows included). */
export function dataPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => (p.type === 'row' ? (p.panels ?? []) : [p]));
}

/** Every PromQL query of the dashboard: panel targets and annotation queries. */
export function dashboardQueries(d: Dashboard): { where: string; expr: string }[] {
  const panels = dataPanels(d).flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr })));
  const annotations = d.annotations.list.filter((a) => a.expr).map((a) => ({ where: `annotation "${a.name}"`, expr: a.expr! }));
  return [...panels, ...annotations];
}

/** Grafana's variables replaced the way Grafana would (a multi-value variable becomes a regex). */
export function substitute(expr: string, vars: { instance: string; model: string; rateInterval?: string; range?: string }): string {
  return expr
    .replaceAll('$__rate_interval', vars.rateInterval ?? '1m')
    .replaceAll('$__range', vars.range ?? '5m')
    .replaceAll('$instance', vars.instance)
    .replaceAll('$model', vars.model);
}

// --- a real Prometheus -----------------------------------------------------------------------------------

export interface QueryResult {
  metric: Record<string, string>;
  value: [number, string];
}

export interface Prometheus {
  url: string;
  proc: ChildProcess;
  /** An instant query; throws when Prometheus answers with an error (a query that does not parse, say). */
  query(q: string): Promise<QueryResult[]>;
  alerts(): Promise<{ labels: Record<string, string>; annotations: Record<string, string>; state: string }[]>;
  /** Resolves once every rule group has finished an evaluation that started after `t` (ms since the epoch). */
  rulesEvaluatedAfter(t: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
  log: () => string;
}

/** Starts `prometheus` with the given configuration file and a fresh TSDB under `dir`; `flags` are added (feature flags, say). */
export async function startPrometheus(configFile: string, dir: string, flags: string[] = []): Promise<Prometheus> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let log = '';
  const proc = spawn(
    'prometheus',
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, 'prometheus-data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      ...flags,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  proc.stderr.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const get = async <T>(p: string): Promise<T> => {
    const res = await fetch(`${url}${p}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`Prometheus ${p}: ${body.error ?? res.status}`);
    return body.data;
  };
  const prom: Prometheus = {
    url,
    proc,
    log: () => log,
    query: async (q) => (await get<{ result: QueryResult[] }>(`/api/v1/query?query=${encodeURIComponent(q)}`)).result,
    alerts: async () => (await get<{ alerts: Awaited<ReturnType<Prometheus['alerts']>> }>('/api/v1/alerts')).alerts,
    // A group's lastEvaluation is the start of its latest evaluation, recorded when that evaluation ends.
    rulesEvaluatedAfter: async (t, timeoutMs = 30_000) => {
      await until(
        'every rule group to evaluate',
        async () => {
          const { groups } = await get<{ groups: { lastEvaluation: string }[] }>('/api/v1/rules');
          return groups.length > 0 && groups.every((g) => Date.parse(g.lastEvaluation) > t) ? true : undefined;
        },
        timeoutMs,
      );
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
  await until('Prometheus to be ready', async () => ((await fetch(`${url}/-/ready`)).ok ? true : undefined), 20_000);
  return prom;
}

export { until } from './until.js';

/**
 * A Prometheus configuration derived from the repository's prometheus.yml: 1 s scrape and evaluation
 * intervals, the given targets instead of localhost:8000, and optionally rule files and an Alertmanager.
 */
export function derivePrometheusConfig(targets: string[], opts: { ruleFiles?: string[]; alertmanager?: string } = {}): string {
  const original = fs.readFileSync('prometheus.yml', 'utf8');
  let config = original
    .replace(/scrape_interval: 5s/, 'scrape_interval: 1s')
    .replace(/evaluation_interval: 5s/, 'evaluation_interval: 1s')
    .replace(/scrape_timeout: 4s/, 'scrape_timeout: 900ms')
    .replace(/targets: \['localhost:8000'\]/, `targets: [${targets.map((t) => `'${t}'`).join(', ')}]`);
  if (config === original || !targets.every((t) => config.includes(t))) throw new Error('prometheus.yml no longer has the expected shape');
  if (opts.ruleFiles) config += `\nrule_files:\n${opts.ruleFiles.map((f) => `  - '${f}'`).join('\n')}\n`;
  if (opts.alertmanager) config += `\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['${opts.alertmanager}']\n`;
  return config;
}

/** A fresh temporary directory (removed by the caller). */
export const tempDir = (prefix: string): string => fs.mkdtempSync(path.join(os.tmpdir(), prefix));

/** A scratch directory for the enclosing describe block: made before its tests, removed after them. */
export function scratchDir(prefix: string): () => string {
  let dir: string | undefined;
  beforeAll(() => {
    dir = tempDir(prefix);
  });
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  return () => dir!;
}

/**
 * Writes PromQL expressions as recording rules into a rule file and runs `promtool check rules` on it:
 * promtool parses every expression with Prometheus's own parser, offline.
 */
export function checkPromqlParses(exprs: { where: string; expr: string }[], dir: string): { code: number; output: string } {
  const file = path.join(dir, 'queries.yml');
  const rules = exprs.map((e, i) => `      - record: parsed:query_${i}\n        expr: ${JSON.stringify(e.expr)}`).join('\n');
  fs.writeFileSync(file, `groups:\n  - name: queries\n    rules:\n${rules}\n`);
  return run('promtool', ['check', 'rules', file]);
}
