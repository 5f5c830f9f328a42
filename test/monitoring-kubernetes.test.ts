/**
 * The Kubernetes manifests in deploy/kubernetes, validated offline: every resource against the Kubernetes
 * OpenAPI schema (kubernetes-models) or, for the Prometheus Operator's ServiceMonitor and PrometheusRule,
 * against the CRD schema (@kubernetes-models/prometheus-operator); then the properties that matter: probes,
 * resources, the GPU variant, the Service/ServiceMonitor wiring to the job the alerts select, the
 * PrometheusRule carrying exactly monitoring/rules (and passing promtool), and the HPA on
 * qwen_requests_waiting through prometheus-adapter.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ServiceMonitor, PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Service } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import {
  checkPromqlParses,
  hasTool,
  readYaml,
  readYamlDocuments,
  RULE_TESTS_DIR,
  ruleGroups,
  run,
  scratchDir,
  warnMissing,
} from './helpers/monitoring.js';

const hasPromtool = hasTool('promtool');
if (!hasPromtool) warnMissing('promtool', 'prometheus', 'promtool check/test rules on the PrometheusRule');

const DIR = 'deploy/kubernetes';
const MODELS = {
  'apps/v1/Deployment': Deployment,
  'v1/Service': Service,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
} as const;

/** Every manifest under deploy/kubernetes (Helm values left out), with the file it came from. */
function manifests(): { file: string; doc: any }[] {
  const files = (fs.readdirSync(DIR, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.yaml') && !f.startsWith('prometheus-adapter'))
    .sort()
    .map((f) => path.join(DIR, f));
  return files.flatMap((file) => readYamlDocuments(file).map((doc) => ({ file, doc })));
}
const all = manifests();
const one = (file: string, kind: string) => {
  const found = all.filter((m) => m.file === path.join(DIR, file) && m.doc.kind === kind);
  expect(found, `${file} ${kind}`).toHaveLength(1);
  return found[0]!.doc;
};
const cpu = () => one('deployment.yaml', 'Deployment');
const gpu = () => one('gpu/deployment.yaml', 'Deployment');
const multiGpu = () => one('multi-gpu/deployment.yaml', 'Deployment');
const container = (d: any) => d.spec.template.spec.containers[0];
const env = (d: any) => Object.fromEntries(container(d).env.map((e: { name: string; value: string }) => [e.name, e.value]));

describe('every manifest', () => {
  it('is one of the expected resources', () => {
    expect(all.map((m) => `${m.file}: ${m.doc.kind}`)).toEqual([
      'deploy/kubernetes/deployment.yaml: Deployment',
      'deploy/kubernetes/gpu/deployment.yaml: Deployment',
      'deploy/kubernetes/hpa.yaml: HorizontalPodAutoscaler',
      'deploy/kubernetes/multi-gpu/deployment.yaml: Deployment',
      'deploy/kubernetes/prometheusrule.yaml: PrometheusRule',
      'deploy/kubernetes/service.yaml: Service',
      'deploy/kubernetes/servicemonitor.yaml: ServiceMonitor',
    ]);
  });

  it('validates against its schema (Kubernetes OpenAPI, or the Prometheus Operator CRD)', () => {
    for (const { file, doc } of all) {
      const Model = MODELS[`${doc.apiVersion}/${doc.kind}` as keyof typeof MODELS];
      expect(Model, `${file}: no schema for ${doc.apiVersion} ${doc.kind}`).toBeDefined();
      expect(() => new Model(doc).validate(), file).not.toThrow();
      expect(doc.metadata.name, file).toBe('qwen-serve');
      expect(doc.metadata.labels['app.kubernetes.io/name'], file).toBe('qwen-serve');
    }
  });

  it('would fail validation with a wrong type or a missing required field', () => {
    const broken = structuredClone(cpu());
    container(broken).ports[0].containerPort = 'http';
    expect(() => new Deployment(broken).validate()).toThrow(/containerPort must be integer/);
    const badInterval = structuredClone(one('servicemonitor.yaml', 'ServiceMonitor'));
    badInterval.spec.endpoints[0].interval = 'five seconds';
    expect(() => new ServiceMonitor(badInterval).validate()).toThrow(/interval must match pattern/);
  });
});

describe('the Deployment', () => {
  it('probes /health for startup, readiness and liveness', () => {
    for (const d of [cpu(), gpu(), multiGpu()]) {
      const c = container(d);
      for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe'])
        expect(c[probe].httpGet, probe).toEqual({ path: '/health', port: 'http' });
      // Startup covers a model download (10 minutes); liveness tolerates a worker reload.
      expect(c.startupProbe.periodSeconds * c.startupProbe.failureThreshold).toBeGreaterThanOrEqual(600);
      expect(c.livenessProbe.periodSeconds * c.livenessProbe.failureThreshold).toBeGreaterThanOrEqual(30);
    }
  });

  it('serves the API on 8080 and metrics on 8000 on all interfaces, with models in /models', () => {
    for (const d of [cpu(), gpu(), multiGpu()]) {
      expect(container(d).ports).toEqual([
        { name: 'http', containerPort: 8080 },
        { name: 'metrics', containerPort: 8000 },
      ]);
      expect(env(d)).toMatchObject({ QWEN_HOST: '0.0.0.0', QWEN_METRICS_HOST: '0.0.0.0', QWEN_MODELS_DIR: '/models' });
      expect(container(d).volumeMounts).toContainEqual({ name: 'models', mountPath: '/models' });
      expect(d.spec.template.spec.volumes.map((v: { name: string }) => v.name)).toContain('models');
    }
  });

  it('requests resources, sizes llama.cpp threads to the CPU request and runs as non-root', () => {
    for (const d of [cpu(), gpu(), multiGpu()]) {
      const { requests, limits } = container(d).resources;
      expect(requests.cpu).toBeDefined();
      expect(requests.memory).toBeDefined();
      expect(limits.memory).toBeDefined();
      // Threads × workers × engine processes (one per GPU with QWEN_GPUS) = the cores requested.
      const engines = env(d).QWEN_GPUS === 'all' ? Number(limits['nvidia.com/gpu']) : 1;
      expect(Number(env(d).QWEN_THREADS) * Number(env(d).QWEN_WORKERS ?? 1) * engines).toBe(Number(requests.cpu));
      expect(d.spec.template.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
      expect(container(d).securityContext.allowPrivilegeEscalation).toBe(false);
      // SIGTERM drains for --drain-timeout (30 s by default) before the kubelet kills the pod.
      expect(d.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThan(30);
    }
  });

  it('has a GPU variant that replaces it: same name and labels, one nvidia.com/gpu, the cuda image', () => {
    const c = cpu();
    const g = gpu();
    expect(g.metadata).toEqual(c.metadata);
    expect(g.spec.selector).toEqual(c.spec.selector);
    expect(g.spec.template.metadata.labels).toEqual(c.spec.template.metadata.labels);
    expect(container(g).resources.limits['nvidia.com/gpu']).toBe('1');
    expect(container(c).resources.limits['nvidia.com/gpu']).toBeUndefined();
    expect(container(g).image).toMatch(/cuda/);
    expect(env(g)).toMatchObject({ QWEN_GPU: 'cuda', QWEN_GPU_LAYERS: 'max' });
    expect(g.spec.template.spec.tolerations).toContainEqual({ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' });
  });

  it('has a several-GPUs-per-pod variant: one engine process per GPU (QWEN_GPUS=all), cores for each engine', () => {
    const c = cpu();
    const m = multiGpu();
    expect(m.metadata).toEqual(c.metadata);
    expect(m.spec.selector).toEqual(c.spec.selector);
    const gpus = Number(container(m).resources.limits['nvidia.com/gpu']);
    expect(gpus).toBeGreaterThan(1);
    expect(container(m).resources.requests['nvidia.com/gpu']).toBe(String(gpus));
    expect(env(m)).toMatchObject({ QWEN_GPUS: 'all', QWEN_GPU: 'cuda', QWEN_GPU_LAYERS: 'max' });
    expect(container(m).image).toMatch(/cuda/);
  });
});

describe('the Service and ServiceMonitor', () => {
  it('route to the pods and scrape their metrics port as job qwen-inference', () => {
    const svc = one('service.yaml', 'Service');
    const sm = one('servicemonitor.yaml', 'ServiceMonitor');
    const podLabels = cpu().spec.template.metadata.labels;
    for (const [k, v] of Object.entries(svc.spec.selector)) expect(podLabels[k], k).toBe(v);
    const containerPorts = new Set(container(cpu()).ports.map((p: { name: string }) => p.name));
    for (const p of svc.spec.ports) expect(containerPorts, p.name).toContain(p.targetPort);
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) expect(svc.metadata.labels[k], k).toBe(v);
    expect(sm.spec.endpoints).toHaveLength(1);
    const ep = sm.spec.endpoints[0];
    expect(svc.spec.ports.map((p: { name: string }) => p.name)).toContain(ep.port);
    expect(svc.spec.ports.find((p: { name: string }) => p.name === ep.port).port).toBe(8000);
    expect(ep.path).toBe('/metrics');
    // The alerts select up{job="qwen-inference"}, the job name of prometheus.yml.
    expect(ep.relabelings).toContainEqual({ targetLabel: 'job', replacement: 'qwen-inference' });
    expect(readYaml('prometheus.yml').scrape_configs[0].job_name).toBe('qwen-inference');
  });
});

describe('the PrometheusRule', () => {
  const rule = () => one('prometheusrule.yaml', 'PrometheusRule');

  it('carries exactly the rule groups of monitoring/rules', () => {
    expect(rule().spec.groups).toEqual(ruleGroups());
  });

  it('is what generate-prometheusrule.mjs writes', () => {
    const r = run(process.execPath, ['deploy/kubernetes/generate-prometheusrule.mjs', '--check']);
    expect(r.code, r.output).toBe(0);
  });

  describe.skipIf(!hasPromtool)('extracted for promtool', () => {
    const dir = scratchDir('qwen-serve-k8s-');

    it('passes promtool check rules and the unit tests of monitoring/tests', () => {
      const extracted = path.join(dir(), 'prometheusrule-rules.yml');
      fs.writeFileSync(extracted, JSON.stringify({ groups: rule().spec.groups }));
      const checked = run('promtool', ['check', 'rules', extracted]);
      expect(checked.code, checked.output).toBe(0);
      expect(checked.output).toContain(`SUCCESS: ${ruleGroups().reduce((n, g) => n + g.rules.length, 0)} rules found`);
      // The repository's unit tests, pointed at the extracted rules instead of monitoring/rules.
      for (const f of fs.readdirSync(RULE_TESTS_DIR).filter((t) => t.endsWith('.test.yml'))) {
        const test = readYaml(path.join(RULE_TESTS_DIR, f));
        test.rule_files = [extracted];
        const file = path.join(dir(), f);
        fs.writeFileSync(file, JSON.stringify(test));
        const tested = run('promtool', ['test', 'rules', file]);
        expect(tested.code, tested.output).toBe(0);
      }
    });
  });
});

describe('autoscaling on qwen_requests_waiting', () => {
  const values = readYaml<{
    prometheus: { url: string };
    rules: {
      default: boolean;
      custom: {
        seriesQuery: string;
        resources: { overrides: Record<string, { resource: string }> };
        name: { matches: string; as: string };
        metricsQuery: string;
      }[];
    };
  }>(path.join(DIR, 'prometheus-adapter/values.yaml'));

  it('scales the Deployment on the average queue per pod', () => {
    const hpa = one('hpa.yaml', 'HorizontalPodAutoscaler');
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: cpu().metadata.name });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(1);
    expect(hpa.spec.maxReplicas).toBeGreaterThan(hpa.spec.minReplicas);
    expect(hpa.spec.metrics).toEqual([
      { type: 'Pods', pods: { metric: { name: 'qwen_requests_waiting' }, target: { type: 'AverageValue', averageValue: '2' } } },
    ]);
  });

  it('gets the metric from a prometheus-adapter rule that maps it per pod', () => {
    const hpaMetric = one('hpa.yaml', 'HorizontalPodAutoscaler').spec.metrics[0].pods.metric.name;
    expect(values.rules.default).toBe(false);
    const rules = values.rules.custom.filter((r) => r.seriesQuery.startsWith('qwen_requests_waiting{'));
    expect(rules).toHaveLength(1);
    const r = rules[0]!;
    // The adapter names the metric from the series name through name.matches / name.as.
    expect('qwen_requests_waiting'.replace(new RegExp(r.name.matches), r.name.as)).toBe(hpaMetric);
    // ServiceMonitor targets carry namespace and pod labels; the adapter maps them to the resources.
    expect(r.resources.overrides).toEqual({ namespace: { resource: 'namespace' }, pod: { resource: 'pod' } });
    expect(r.metricsQuery).toContain('<<.Series>>');
    expect(r.metricsQuery).toContain('<<.LabelMatchers>>');
    expect(r.metricsQuery).toContain('<<.GroupBy>>');
  });

  describe.skipIf(!hasPromtool)('with promtool', () => {
    const dir = scratchDir('qwen-serve-adapter-');

    it('has queries that parse once the adapter fills in its template', () => {
      const r = values.rules.custom[0]!;
      // What the adapter sends for `kubectl get --raw .../namespaces/default/pods/*/qwen_requests_waiting`.
      const rendered = r.metricsQuery
        .replaceAll('<<.Series>>', 'qwen_requests_waiting')
        .replaceAll('<<.LabelMatchers>>', 'namespace="default",pod=~"qwen-serve-a|qwen-serve-b"')
        .replaceAll('<<.GroupBy>>', 'pod');
      const checked = checkPromqlParses(
        [
          { where: 'seriesQuery', expr: r.seriesQuery },
          { where: 'metricsQuery', expr: rendered },
        ],
        dir(),
      );
      expect(checked.code, checked.output).toBe(0);
    });
  });
});
