// Writes deploy/kubernetes/prometheusrule.yaml (a Prometheus Operator PrometheusRule) from the rule files in
// monitoring/rules, so that Kubernetes gets exactly the rules that promtool tests.
//   node deploy/kubernetes/generate-prometheusrule.mjs           # rewrite the file
//   node deploy/kubernetes/generate-prometheusrule.mjs --check   # exit 1 if it is out of date
// test/monitoring-kubernetes.test.ts runs the check.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as prettier from 'prettier';
import { parse, stringify } from 'yaml';

const root = fileURLToPath(new URL('../../', import.meta.url));
const rulesDir = path.join(root, 'monitoring/rules');
const out = path.join(root, 'deploy/kubernetes/prometheusrule.yaml');

const files = fs
  .readdirSync(rulesDir)
  .filter((f) => f.endsWith('.yml') || f.endsWith('.yaml'))
  .sort();
const groups = files.flatMap((f) => parse(fs.readFileSync(path.join(rulesDir, f), 'utf8')).groups);

const resource = {
  apiVersion: 'monitoring.coreos.com/v1',
  kind: 'PrometheusRule',
  metadata: { name: 'qwen-serve', labels: { 'app.kubernetes.io/name': 'qwen-serve' } },
  spec: { groups },
};
const header = [
  '# GENERATED from monitoring/rules/*.yml by deploy/kubernetes/generate-prometheusrule.mjs: edit those files and',
  '# rerun it. Your Prometheus must select this PrometheusRule: with kube-prometheus-stack, add the label',
  '# `release: <your release name>` or set ruleSelectorNilUsesHelmValues=false.',
  '',
].join('\n');
const text = await prettier.format(header + stringify(resource, { lineWidth: 0 }), {
  ...(await prettier.resolveConfig(out)),
  parser: 'yaml',
});

if (process.argv.includes('--check')) {
  const current = fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '';
  if (current !== text) {
    console.error(`${path.relative(root, out)} is out of date: run node deploy/kubernetes/generate-prometheusrule.mjs`);
    process.exit(1);
  }
  console.log(`${path.relative(root, out)} is up to date (${files.join(', ')})`);
} else {
  fs.writeFileSync(out, text);
  console.log(`wrote ${path.relative(root, out)} from ${files.join(', ')}`);
}
