/**
 * The Grafana dashboard and its provisioning files, validated without Grafana: structure, variables,
 * every panel with PromQL targets filtered by the variables, only metrics that qwen-serve exposes, every
 * query parsed by Prometheus's own parser (promtool), exemplars on the latency panels, and the provisioning
 * wired to the compose services (the exemplars' trace ids linked to traces).
 * test/monitoring-e2e.test.ts runs the same queries against a real Prometheus with data.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ALL_METRICS, MAIN, WORKER } from '../src/metrics/definitions.js';
import { ExemplarStore } from '../src/metrics/exemplars.js';
import {
  checkPromqlParses,
  dashboardQueries,
  dataPanels,
  DOC,
  hasTool,
  metricDefinition,
  qwenMetricsIn,
  readDashboard,
  readYaml,
  substitute,
  scratchDir,
  unknownMetrics,
  warnMissing,
} from './helpers/monitoring.js';

const hasPromtool = hasTool('promtool');
if (!hasPromtool) warnMissing('promtool', 'prometheus', 'parsing every dashboard query');

/** The tutorial's four metrics: names and labels unchanged, server-wide (no model label). */
const TUTORIAL_METRICS = [MAIN.requests.name, MAIN.duration.name, MAIN.active.name, MAIN.gpuMemoryUsed.name];

const dashboard = readDashboard();
const panels = dataPanels(dashboard);

describe('the dashboard', () => {
  it('is a Grafana dashboard with a stable uid', () => {
    expect(dashboard.uid).toBe('qwen-serve');
    expect(dashboard.title).toBe('qwen-serve');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(panels.length).toBeGreaterThanOrEqual(15);
  });

  it('is templated by data source, model and instance (instance chained to model)', () => {
    const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    expect(vars.get('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const name of ['model', 'instance']) {
      const v = vars.get(name)!;
      expect(v, name).toMatchObject({ type: 'query', includeAll: true, multi: true });
      const query = (v.query as { query: string }).query;
      expect(query).toBe(v.definition);
      expect(query).toMatch(new RegExp(`^label_values\\(qwen_[a-z_]+(\\{[^}]*\\})?, ${name}\\)$`));
      expect(unknownMetrics(query)).toEqual([]);
    }
    expect((vars.get('instance')!.query as { query: string }).query).toContain('model=~"$model"');
    // The models come from a metric every configured model has (with "All" matching every one of them).
    const models = (vars.get('model')!.query as { query: string }).query;
    expect(metricDefinition(qwenMetricsIn(models)[0]!)!.labelNames).toContain('model');
    expect(vars.get('model')).toMatchObject({ allValue: '.*' });
  });

  it('has the panels the issue asks for', () => {
    const titles = panels.map((p) => p.title);
    for (const wanted of [
      'Request rate',
      'Request latency (p50, p95, p99)',
      'Time to first token (p50, p95, p99)',
      'Inter-token latency (p50, p95, p99)',
      'Tokens per second',
      'Queue and running',
      'Finish reasons',
      'Errors and rejections',
      'Workers',
      'KV cache use',
      'GPU memory per device',
      'GPU utilisation per device',
      'Decode batch per engine (tokens and sequences per step)',
      'Decode step time per engine (p50, p99)',
      'Speculative decoding',
      'Resident models',
      'Model loads and unloads',
    ]) {
      expect(titles).toContain(wanted);
    }
    expect(new Set(titles).size).toBe(titles.length);
    const ids = dashboard.panels.flatMap((p) => [p.id, ...(p.panels ?? []).map((c) => c.id)]);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("shows exemplars on the latency panels, once each, from the histograms the server's exemplar store feeds", () => {
    const latency = {
      'Request latency (p50, p95, p99)': MAIN.duration.name,
      'Time to first token (p50, p95, p99)': WORKER.ttft.name,
      'Inter-token latency (p50, p95, p99)': WORKER.itl.name,
      'Queue wait (p50, p95, p99)': MAIN.queueTime.name,
    };
    for (const p of panels) {
      const withExemplars = (p.targets ?? []).filter((t) => t.exemplar === true);
      const histogram = latency[p.title as keyof typeof latency];
      if (histogram === undefined) {
        expect(withExemplars, p.title).toEqual([]);
        continue;
      }
      // One target per panel: its quantiles read the same buckets, and each would draw the same exemplars again.
      expect(withExemplars, p.title).toHaveLength(1);
      expect(qwenMetricsIn(withExemplars[0]!.expr), p.title).toEqual([`${histogram}_bucket`]);
      expect(p.description, p.title).toContain('trace');
    }
  });

  it('gives every panel a description, the templated data source and at least one PromQL target', () => {
    for (const p of panels) {
      expect(p.description, p.title).toBeTruthy();
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      const refIds = p.targets!.map((t) => t.refId);
      expect(new Set(refIds).size, p.title).toBe(refIds.length);
      for (const t of p.targets!) {
        expect(t.expr.trim(), `${p.title} ${t.refId}`).not.toBe('');
        expect(t.datasource, `${p.title} ${t.refId}`).toEqual(p.datasource);
      }
    }
  });

  it('filters every selector by $instance, by $model exactly where the metric has a model label', () => {
    for (const { where, expr } of dashboardQueries(dashboard)) {
      expect(unknownMetrics(expr), where).toEqual([]);
      const selectors = [...expr.matchAll(/(?<![\w:])((?:qwen_[a-z0-9_]+)|up|ALERTS)(\{[^}]*\})?/g)];
      expect(selectors.length, where).toBeGreaterThan(0);
      for (const [, name, labels = ''] of selectors) {
        expect(labels, `${where}: ${name}`).toContain('instance=~"$instance"');
        const def = name!.startsWith('qwen_') ? metricDefinition(name!) : undefined;
        if (def?.labelNames.includes('model')) expect(labels, `${where}: ${name}`).toContain('model=~"$model"');
        // A server-wide metric (the tutorial's four, GPU, process) has no model label: a model matcher on it
        // would empty the panel as soon as one model is picked.
        else if (def) expect(labels, `${where}: ${name} has no model label`).not.toMatch(/\bmodel\b/);
      }
      // Rates span Grafana's $__rate_interval, so they stay right whatever the scrape interval.
      for (const m of expr.matchAll(/\b(rate|increase)\([^[]+\[([^\]]+)\]/g)) expect(m[2], where).toBe('$__rate_interval');
    }
    expect(panels.flatMap((p) => p.targets!.flatMap((t) => qwenMetricsIn(t.expr))).length).toBeGreaterThan(20);
  });

  it('reads every model-labelled metric from the definitions, the tutorial metrics among the server-wide ones', () => {
    const perModel = ALL_METRICS.filter((m) => m.labelNames.includes('model')).map((m) => m.name);
    // The contract of several models per server: these carry model, the tutorial's four do not.
    for (const name of ['qwen_requests_finished_total', 'qwen_workers_ready', 'qwen_worker_restarts_total', 'qwen_model_resident'])
      expect(perModel, name).toContain(name);
    for (const name of TUTORIAL_METRICS) expect(perModel, name).not.toContain(name);
    const used = new Set(dashboardQueries(dashboard).flatMap(({ expr }) => qwenMetricsIn(expr).map((s) => metricDefinition(s)!.name)));
    for (const name of TUTORIAL_METRICS) expect(used, name).toContain(name);
    for (const name of ['qwen_model_resident', 'qwen_model_loads_total', 'qwen_model_unloads_total']) expect(used, name).toContain(name);
  });

  it('splits every aggregation of a per-model metric by model, and names the model in its legend', () => {
    for (const p of panels) {
      for (const t of p.targets!) {
        const where = `panel "${p.title}" ${t.refId}`;
        const perModel = qwenMetricsIn(t.expr).some((s) => metricDefinition(s)!.labelNames.includes('model'));
        if (!perModel) continue;
        // sum/avg/min/max/count without `by (..., model, ...)` would add the models up.
        for (const m of t.expr.matchAll(/\b(sum|avg|min|max|count)\s*(by\s*\(([^)]*)\))?\s*\(/g))
          expect(m[3]?.split(',').map((l) => l.trim()) ?? [], `${where}: ${m[0]}`).toContain('model');
        expect(t.legendFormat, where).toContain('{{model}}');
      }
    }
    // Firing alerts: the chosen models' and the server-wide ones (no model label), never another model's.
    const alerts = dashboard.annotations.list.find((a) => a.expr?.startsWith('ALERTS'))!;
    expect(alerts.expr).toContain('model=~"$model|"');
  });

  it('shows the speculative-decoding acceptance rate as accepted ÷ draft tokens (leaving out 0 ÷ 0), and both per second', () => {
    const panel = panels.find((p) => p.title === 'Speculative decoding')!;
    const expr = (refId: string) => panel.targets!.find((t) => t.refId === refId)!.expr;
    const [accepted, drafted, ...rest] = expr('A').split(' / ');
    expect(rest).toEqual([]);
    expect(qwenMetricsIn(accepted!)).toEqual([WORKER.specAcceptedTokens.name]);
    expect(qwenMetricsIn(drafted!)).toEqual([WORKER.specDraftTokens.name]);
    expect(drafted).toMatch(/^\(.*\) > 0\)$/);
    expect(qwenMetricsIn(expr('B'))).toEqual([WORKER.specDraftTokens.name]);
    expect(qwenMetricsIn(expr('C'))).toEqual([WORKER.specAcceptedTokens.name]);
  });

  it('has a Models row with residency, loads and unloads', () => {
    const row = dashboard.panels.find((p) => p.type === 'row' && p.title === 'Models')!;
    expect(row).toBeDefined();
    const below = dashboard.panels.filter((p) => p.type !== 'row' && p.gridPos.y === row.gridPos.y + row.gridPos.h).map((p) => p.title);
    expect(below).toEqual(['Resident models', 'Model loads and unloads', 'Model load time']);
  });

  it('lays panels on the 24-column grid without overlaps', () => {
    const cells = new Set<string>();
    for (const p of dashboard.panels) {
      const { x, y, w, h } = p.gridPos;
      expect(x >= 0 && w > 0 && x + w <= 24 && h > 0 && y >= 0, p.title).toBe(true);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          expect(cells.has(`${i},${j}`), `${p.title} overlaps at ${i},${j}`).toBe(false);
          cells.add(`${i},${j}`);
        }
      }
    }
  });

  describe.skipIf(!hasPromtool)('with promtool', () => {
    const dir = scratchDir('qwen-serve-dash-');

    it("parses every query with Prometheus's parser once Grafana's variables are substituted", () => {
      const queries = dashboardQueries(dashboard).map((q) => ({ ...q, expr: substitute(q.expr, { instance: '.*', model: '.*' }) }));
      expect(queries.length).toBeGreaterThan(25);
      const r = checkPromqlParses(queries, dir());
      expect(r.code, r.output).toBe(0);
      expect(r.output).toContain(`SUCCESS: ${queries.length} rules found`);
    });

    it('would catch a query that does not parse', () => {
      const r = checkPromqlParses([{ where: 'broken', expr: 'sum(rate(qwen_inference_request_total[5m])' }], dir());
      expect(r.code).not.toBe(0);
    });
  });
});

describe('the Grafana provisioning', () => {
  const compose = readYaml<{ services: Record<string, { volumes?: string[]; ports?: string[] }> }>('docker-compose.yml');
  const mounts = new Map(
    (compose.services.grafana!.volumes ?? []).map((v) => {
      const [from, to] = v.split(':');
      return [to!, from!];
    }),
  );

  it('provisions the compose Prometheus as the default data source', () => {
    const files = fs.readdirSync('monitoring/grafana/provisioning/datasources');
    expect(files).toEqual(['prometheus.yml']);
    const ds = readYaml<{ apiVersion: number; datasources: Record<string, unknown>[] }>(
      'monitoring/grafana/provisioning/datasources/prometheus.yml',
    );
    expect(ds.apiVersion).toBe(1);
    expect(ds.datasources).toHaveLength(1);
    expect(ds.datasources[0]).toMatchObject({ type: 'prometheus', access: 'proxy', url: 'http://prometheus:9090', isDefault: true });
    expect(compose.services.prometheus!.ports!.some((p) => p.endsWith(':9090'))).toBe(true);
    // The scrape interval of the compose Prometheus, for $__rate_interval.
    const prom = readYaml<{ global: { scrape_interval: string } }>('monitoring/prometheus-compose.yml');
    expect((ds.datasources[0]!.jsonData as { timeInterval: string }).timeInterval).toBe(prom.global.scrape_interval);
  });

  it("links exemplars' trace_id label, the one the server's exemplars carry, to a trace", () => {
    const ds = readYaml<{ datasources: { jsonData: { exemplarTraceIdDestinations?: Record<string, string>[] } }[] }>(
      'monitoring/grafana/provisioning/datasources/prometheus.yml',
    );
    const store = new ExemplarStore();
    store.record(MAIN.duration.name, {}, 0.5, '0af7651916cd43dd8448eb211c80319c');
    const annotated = store.annotate(`${MAIN.duration.name}_bucket{le="+Inf"} 1\n# EOF\n`);
    const label = / # \{(\w+)="0af7651916cd43dd8448eb211c80319c"\}/.exec(annotated)?.[1];
    expect(label).toBe('trace_id');
    const destinations = ds.datasources[0]!.jsonData.exemplarTraceIdDestinations ?? [];
    expect(destinations).toHaveLength(1);
    expect(destinations[0]!.name).toBe(label);
    // A link needs the trace id in it; `$$` keeps Grafana's provisioning from reading `${…}` as an environment variable.
    if (destinations[0]!.url !== undefined) expect(destinations[0]!.url).toContain('$${__value.raw}');
    else expect(destinations[0]!.datasourceUid).toBeTruthy();
  });

  it('loads the dashboard from where docker-compose.yml mounts it', () => {
    expect(mounts.get('/etc/grafana/provisioning')).toBe('./monitoring/grafana/provisioning');
    const files = fs.readdirSync('monitoring/grafana/provisioning/dashboards');
    expect(files).toEqual(['qwen-serve.yml']);
    const prov = readYaml<{ apiVersion: number; providers: { type: string; options: { path: string } }[] }>(
      'monitoring/grafana/provisioning/dashboards/qwen-serve.yml',
    );
    expect(prov.apiVersion).toBe(1);
    expect(prov.providers).toHaveLength(1);
    expect(prov.providers[0]!.type).toBe('file');
    const source = mounts.get(prov.providers[0]!.options.path);
    expect(source, 'the provider path is a mount of the dashboards folder').toBe('./monitoring/grafana/dashboards');
    expect(fs.readdirSync(source!).filter((f) => f.endsWith('.json'))).toEqual([path.basename('qwen-serve.json')]);
  });
});

describe('docs/monitoring.md', () => {
  it('explains every panel', () => {
    const doc = fs.readFileSync(DOC, 'utf8');
    for (const p of panels) expect(doc, p.title).toContain(p.title);
  });
});
