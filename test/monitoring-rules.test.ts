/**
 * The Prometheus rules (monitoring/rules), their promtool unit tests (monitoring/tests), the Alertmanager
 * example (monitoring/alertmanager.yml) and the compose Prometheus configuration: valid for the real tools,
 * every alert tested firing and not firing, only metrics that qwen-serve exposes, and documented.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  alertRules,
  DOC,
  hasTool,
  metricDefinition,
  qwenMetricsIn,
  readYaml,
  recordingRules,
  RULE_TESTS_DIR,
  ruleFiles,
  ruleGroups,
  run,
  scratchDir,
  unknownMetrics,
  warnMissing,
} from './helpers/monitoring.js';

const hasPromtool = hasTool('promtool');
const hasAmtool = hasTool('amtool');
if (!hasPromtool) warnMissing('promtool', 'prometheus', 'promtool check/test rules and check config');
if (!hasAmtool) warnMissing('amtool', 'prometheus-alertmanager', 'amtool check-config of monitoring/alertmanager.yml');

const testFiles = fs
  .readdirSync(RULE_TESTS_DIR)
  .filter((f) => f.endsWith('.test.yml'))
  .map((f) => path.join(RULE_TESTS_DIR, f));

interface RuleTestFile {
  rule_files: string[];
  tests: {
    input_series?: { series: string; values: string }[];
    alert_rule_test?: { alertname: string; eval_time: string; exp_alerts: { exp_labels?: Record<string, string> }[] }[];
    promql_expr_test?: { expr: string }[];
  }[];
}
const unitTests = testFiles.map((f) => ({ file: f, ...readYaml<RuleTestFile>(f) }));

/** Whether a rule reads a metric with a `model` label (src/metrics/definitions.ts), directly or through a recording rule that keeps it. */
const readsPerModel = (expr: string) =>
  qwenMetricsIn(expr).some((name) => metricDefinition(name)!.labelNames.includes('model')) ||
  /\b[a-z_]*model[a-z_]*:qwen_[a-z0-9_]+:[a-z0-9_]+\b/.test(expr);
/** The label lists of every aggregation in a PromQL expression: `sum by (a, b) (` gives [a, b], `sum(` gives []. */
const aggregations = (expr: string) =>
  [...expr.matchAll(/\b(sum|avg|min|max|count)\s*(?:by\s*\(([^)]*)\))?\s*\(/g)].map((m) => (m[2] ?? '').split(',').map((l) => l.trim()));

describe('the rule files', () => {
  it('are two files with the recording rules and the alerts, and rule names are unique', () => {
    expect(ruleFiles()).toEqual(['monitoring/rules/qwen-serve-alerts.yml', 'monitoring/rules/qwen-serve-recording.yml']);
    const records = recordingRules().map((r) => r.record);
    const alerts = alertRules().map((r) => r.alert);
    expect(new Set(records).size).toBe(records.length);
    expect(new Set(alerts).size).toBe(alerts.length);
    expect(new Set(ruleGroups().map((g) => g.name)).size).toBe(ruleGroups().length);
  });

  it('record what the issue asks for, named level:metric:operations', () => {
    const records = recordingRules().map((r) => r.record);
    for (const name of records) expect(name, name).toMatch(/^[a-z_]+:qwen_[a-z0-9_]+:[a-z0-9_]+$/);
    // request rate, error ratio, latency p50/p95/p99, TTFT p95, ITL p95, tokens/s, queue depth, occupancy
    for (const wanted of [
      'job_endpoint:qwen_inference_requests:rate1m',
      'job_model:qwen_request_errors:ratio_rate5m',
      'job_endpoint:qwen_inference_duration_seconds:p50_rate5m',
      'job_endpoint:qwen_inference_duration_seconds:p95_rate5m',
      'job_endpoint:qwen_inference_duration_seconds:p99_rate5m',
      'job_model:qwen_time_to_first_token_seconds:p95_rate5m',
      'job_model:qwen_inter_token_latency_seconds:p95_rate5m',
      'job_model:qwen_prompt_tokens:rate1m',
      'job_model:qwen_generation_tokens:rate1m',
      'job_model:qwen_requests_waiting:sum',
      'job_model:qwen_sequence_occupancy:ratio',
    ]) {
      expect(records).toContain(wanted);
    }
  });

  it('use only metric names that qwen-serve exposes (docs/metrics.md), with the right type', () => {
    for (const rule of [...recordingRules(), ...alertRules()]) {
      const name = rule.record ?? rule.alert;
      expect(unknownMetrics(rule.expr), `${name}: ${rule.expr}`).toEqual([]);
      for (const series of qwenMetricsIn(rule.expr)) {
        const def = metricDefinition(series)!;
        // rate()/increase() only on counters and histogram parts; a gauge is never rated.
        if (new RegExp(`(rate|increase)\\(${series}[{\\[]`).test(rule.expr.replace(/\s+/g, '')))
          expect(def.kind === 'counter' || (def.kind === 'histogram' && series !== def.name), `${name} rates ${series} (${def.kind})`).toBe(
            true,
          );
      }
    }
    // Every recording rule that an alert uses exists.
    const records = new Set(recordingRules().map((r) => r.record));
    for (const alert of alertRules()) {
      for (const used of alert.expr.match(/\b[a-z_]+:qwen_[a-z0-9_]+:[a-z0-9_]+\b/g) ?? [])
        expect(records, `${alert.alert} uses ${used}`).toContain(used);
    }
  });

  it('cover the alerts the issue asks for, each with a severity, a summary, a description and a one-sentence runbook', () => {
    const alerts = alertRules();
    const names = alerts.map((a) => a.alert);
    for (const wanted of [
      'QwenLatencyBudgetBurnFast', // latency SLO burn
      'QwenLatencyBudgetBurnSlow',
      'QwenErrorRatioHigh', // error ratio
      'QwenQueueFull', // queue saturation
      'QwenQueueBacklog',
      'QwenNoWorkersReady', // workers not ready
      'QwenWorkersDegraded',
      'QwenWorkerRestarts',
      'QwenEngineDown',
      'QwenEngineRestarts',
      'QwenModelThrashing', // an on-demand model evicted again and again
      'QwenGPUMemoryHigh', // GPU memory above 90%
      'QwenTargetDown', // target down
      'QwenMetricsCollectTimeouts', // metrics collection timeouts
    ]) {
      expect(names).toContain(wanted);
    }
    for (const a of alerts) {
      expect(['critical', 'warning'], a.alert).toContain(a.labels?.severity);
      expect(a.annotations?.summary, a.alert).toBeTruthy();
      expect(a.annotations?.description, a.alert).toBeTruthy();
      const runbook = a.annotations?.runbook ?? '';
      // One line, one sentence: capitalised, ends with a full stop, no other full stop followed by a space.
      expect(runbook, `${a.alert} runbook`).toMatch(/^[A-Z][^\n]+\.$/);
      expect(runbook.slice(0, -1), `${a.alert} runbook is one sentence`).not.toMatch(/\.\s/);
    }
    expect(alerts.find((a) => a.alert === 'QwenGPUMemoryHigh')!.expr).toContain('> 0.9');
    expect(alerts.find((a) => a.alert === 'QwenTargetDown')!.expr).toContain('up{job="qwen-inference"} == 0');
  });

  it('keep models apart: every rule on a per-model metric aggregates by model, and its alerts name the model', () => {
    for (const rule of [...recordingRules(), ...alertRules()]) {
      const name = rule.record ?? rule.alert;
      if (!readsPerModel(rule.expr)) continue;
      for (const by of aggregations(rule.expr)) expect(by, `${name} aggregates without model: ${rule.expr}`).toContain('model');
      // A raw per-model series is aggregated on purpose (engine series carry engine and device too).
      if (qwenMetricsIn(rule.expr).length > 0) expect(aggregations(rule.expr).length, `${name} does not aggregate`).toBeGreaterThan(0);
      if (rule.alert) expect(rule.annotations?.summary, `${name} summary names the model`).toContain('{{ $labels.model }}');
    }
    // The worker and engine health alerts are per model, and leave out an on-demand model that is unloaded.
    for (const alert of ['QwenNoWorkersReady', 'QwenWorkersDegraded', 'QwenEngineDown']) {
      const expr = alertRules().find((a) => a.alert === alert)!.expr;
      expect(expr, alert).toMatch(/unless on \(job, instance, model\)\s+qwen_model_resident == 0/);
    }
    // The tutorial's metrics have no model label: their rules stay per endpoint.
    for (const rule of recordingRules().filter((r) => r.expr.includes('qwen_inference_'))) expect(rule.expr).not.toMatch(/\bmodel\b/);
  });

  it.skipIf(!hasPromtool)('pass promtool check rules', () => {
    const r = run('promtool', ['check', 'rules', ...ruleFiles()]);
    expect(r.code, r.output).toBe(0);
    for (const f of ruleFiles()) {
      const count = readYaml<{ groups: { rules: unknown[] }[] }>(f).groups.reduce((n, g) => n + g.rules.length, 0);
      expect(r.output).toContain(`Checking ${f}\n  SUCCESS: ${count} rules found`);
    }
  });
});

describe('the promtool unit tests', () => {
  it('load the repository rule files', () => {
    for (const t of unitTests) {
      for (const f of t.rule_files) expect(fs.existsSync(path.resolve(RULE_TESTS_DIR, f)), `${t.file}: ${f}`).toBe(true);
    }
  });

  it('test every alert both firing and not firing', () => {
    const firing = new Set<string>();
    const quiet = new Set<string>();
    for (const t of unitTests) {
      for (const test of t.tests) {
        for (const a of test.alert_rule_test ?? []) (a.exp_alerts.length > 0 ? firing : quiet).add(a.alertname);
      }
    }
    for (const { alert } of alertRules()) {
      expect(firing, `${alert} is never tested firing`).toContain(alert);
      expect(quiet, `${alert} is never tested not firing`).toContain(alert);
    }
  });

  it('test every per-model alert firing for one model while another model of the same server is fine', () => {
    const modelsIn = (series: string[]) => new Set(series.flatMap((s) => [...(/\bmodel="([^"]+)"/.exec(s)?.slice(1) ?? [])]));
    for (const { alert, expr } of alertRules()) {
      if (!readsPerModel(expr)) continue;
      const split = unitTests.some((t) =>
        t.tests.some((test) => {
          const given = modelsIn((test.input_series ?? []).map((i) => i.series));
          return (test.alert_rule_test ?? []).some((a) => {
            if (a.alertname !== alert || a.exp_alerts.length === 0) return false;
            const fired = new Set(a.exp_alerts.map((e) => e.exp_labels?.model));
            return given.size >= 2 && [...fired].every((m) => m !== undefined && given.has(m)) && fired.size < given.size;
          });
        }),
      );
      expect(split, `${alert}: no test with two models where only the bad one fires`).toBe(true);
    }
  });

  it('test every recording rule', () => {
    const tested = new Set(unitTests.flatMap((t) => t.tests.flatMap((test) => (test.promql_expr_test ?? []).map((e) => e.expr))));
    for (const { record } of recordingRules()) expect(tested, `${record} has no promql_expr_test`).toContain(record);
  });

  it.skipIf(!hasPromtool)('pass promtool test rules', () => {
    const r = run('promtool', ['test', 'rules', ...testFiles]);
    expect(r.code, r.output).toBe(0);
    expect(r.output).not.toMatch(/FAILED/);
  });
});

describe('the Alertmanager example', () => {
  const config = readYaml<{
    route: { receiver: string; routes?: { receiver: string }[] };
    receivers: { name: string; webhook_configs?: { url: string }[] }[];
    inhibit_rules: { source_matchers: string[]; target_matchers: string[] }[];
  }>('monitoring/alertmanager.yml');

  it('sends everything to a webhook receiver', () => {
    const receivers = new Map(config.receivers.map((r) => [r.name, r]));
    for (const name of [config.route.receiver, ...(config.route.routes ?? []).map((r) => r.receiver)]) {
      expect(receivers.get(name)?.webhook_configs?.[0]?.url, name).toMatch(/^http:\/\//);
    }
  });

  it('groups and inhibits per model, so one model does not hide another', () => {
    expect((config.route as { group_by?: string[] }).group_by).toContain('model');
    const noWorkers = (config.inhibit_rules as { source_matchers: string[]; equal?: string[] }[]).find((r) =>
      r.source_matchers.includes('alertname="QwenNoWorkersReady"'),
    )!;
    expect(noWorkers.equal).toEqual(['job', 'instance', 'model']);
  });

  it('inhibits only with alert names that exist', () => {
    const names = new Set(alertRules().map((a) => a.alert));
    for (const rule of config.inhibit_rules) {
      for (const m of rule.source_matchers) {
        const exact = /^alertname="([^"]+)"$/.exec(m);
        if (exact) expect(names, m).toContain(exact[1]);
      }
      for (const m of rule.target_matchers) {
        const list = /^alertname=~"([A-Za-z|]+)"$/.exec(m);
        if (list) for (const n of list[1]!.split('|')) expect(names, m).toContain(n);
      }
    }
  });

  it.skipIf(!hasAmtool)('passes amtool check-config and routes every severity to the webhook', () => {
    const r = run('amtool', ['check-config', 'monitoring/alertmanager.yml']);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain('SUCCESS');
    for (const severity of new Set(alertRules().map((a) => a.labels!.severity!))) {
      const routed = run('amtool', [
        'config',
        'routes',
        'test',
        '--config.file=monitoring/alertmanager.yml',
        `severity=${severity}`,
        'alertname=QwenTargetDown',
      ]);
      expect(routed.code, routed.output).toBe(0);
      // The receiver's name, after amtool's warnings about --config.file.
      expect(routed.output.split('\n').filter((l) => l.trim() && !l.startsWith('Warning:'))).toEqual(['webhook']);
    }
  });
});

describe.skipIf(!hasPromtool)('the compose Prometheus configuration', () => {
  const dir = scratchDir('qwen-serve-promcfg-');

  it('passes promtool check config, loading the repository rules', () => {
    // In the container the rules are mounted at /etc/prometheus/rules; here they are in the checkout.
    const config = fs
      .readFileSync('monitoring/prometheus-compose.yml', 'utf8')
      .replace('/etc/prometheus/rules/', `${path.resolve('monitoring/rules')}/`);
    const file = path.join(dir(), 'prometheus.yml');
    fs.writeFileSync(file, config);
    const r = run('promtool', ['check', 'config', file]);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain('SUCCESS: 2 rule files found');
  });
});

describe('docs/monitoring.md', () => {
  it('explains every alert and every recording rule', () => {
    const doc = fs.readFileSync(DOC, 'utf8');
    for (const { alert } of alertRules()) expect(doc, alert).toContain(alert);
    for (const { record } of recordingRules()) expect(doc, record).toContain(record);
  });
});
