/**
 * Flags: each has an env var and a default in --help, bad values exit 2 with a message naming the
 * flag, and the offline default model fails with advice instead of a stack trace.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig, threadsPerWorker } from '../src/config/config.js';
import { FLAGS, envName } from '../src/config/options.js';
import { CLI } from './helpers/server.js';

function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function config(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const r = parseConfig(argv, env);
  if (r.kind !== 'config') throw new Error('expected a config');
  return r.config;
}

/** Writes files into a temporary directory of its own; each returns the file's path. */
function tempWriter(prefix: string): (name: string, text: string) => string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return (name, text) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  };
}

/** The settings of the one model a command line serves. */
function model(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const { models } = config(argv, env);
  expect(models).toHaveLength(1);
  return models[0]!;
}

describe('flags', () => {
  it('--help lists every flag with its env var and default', () => {
    const { code, out: raw } = cli(['--help']);
    expect(code).toBe(0);
    const out = raw.replace(/\s+/g, ' '); // help text wraps long lines
    for (const f of FLAGS) {
      expect(out).toContain(`--${f.name}`);
      expect(out).toContain(envName(f.name));
      if ('boolean' in f) continue; // a switch: off unless given
      if ('default' in f) expect(out).toContain(`default: "${f.default}"`);
      else expect(out).toContain(`default: ${f.defaultText}`);
    }
  });

  it("--version prints package.json's version (the compiled CLI finds it above dist/)", () => {
    const { code, out } = cli(['--version']);
    expect(code).toBe(0);
    expect(out.trim()).toBe(JSON.parse(fs.readFileSync('package.json', 'utf8')).version);
  });

  it('defaults match the documented ones', () => {
    const c = config([]);
    const m = model([]);
    expect(m.source).toBe('hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M');
    expect(m.id).toBeUndefined();
    expect(c.host).toBe('127.0.0.1');
    expect(c.port).toBe(8080);
    expect(m.workers).toBe(1);
    expect(m.sequences).toBe(8);
    expect(m.contextSize).toBe(2048);
    expect(threadsPerWorker(m, 1)).toBe(Math.max(1, os.availableParallelism()));
    expect(m.gpus).toBeUndefined();
    expect(m.engines).toBeUndefined();
    expect(m.onDemand).toBe(false);
    expect(m.keepAliveSeconds).toBe(300);
    expect(c.maxResidentModels).toBe(0);
    expect(c.maxTokensLimit).toBe(2048);
  });

  it('threads default to cores ÷ (workers × engines), at least 1; --threads wins', () => {
    expect(threadsPerWorker(model(['--workers', '64']), 64)).toBe(Math.max(1, Math.floor(os.availableParallelism() / 64)));
    expect(threadsPerWorker(model(['--workers', '2']), 8)).toBe(Math.max(1, Math.floor(os.availableParallelism() / 8)));
    expect(threadsPerWorker(model(['--threads', '3']), 8)).toBe(3);
  });

  it('--gpus takes all, none or distinct indices; --engines a count', () => {
    expect(model(['--gpus', 'all']).gpus).toBe('all');
    expect(model(['--gpus', 'None']).gpus).toBe('none');
    expect(model(['--gpus', '0, 2']).gpus).toEqual([0, 2]);
    expect(model([], { QWEN_GPUS: '3' }).gpus).toEqual([3]);
    expect(model(['--engines', '2']).engines).toBe(2);
    expect(() => config(['--gpus', 'cuda:0'])).toThrow(/--gpus must be all, none or GPU indices like 0,2 \(got "cuda:0"\)/);
    expect(() => config(['--gpus', '1,1'])).toThrow(/--gpus must not list a GPU twice/);
    expect(() => config(['--gpus', ''])).toThrow(/--gpus/);
    expect(() => config(['--engines', '0'])).toThrow(/--engines must be between 1 and 64/);
  });

  it('a switch is off by default, on when given, and its env var takes 1/0, true/false', () => {
    expect(config([]).metricsPerWorker).toBe(false);
    expect(config(['--metrics-per-worker']).metricsPerWorker).toBe(true);
    expect(config([], { QWEN_METRICS_PER_WORKER: '1' }).metricsPerWorker).toBe(true);
    expect(config([], { QWEN_METRICS_PER_WORKER: 'false' }).metricsPerWorker).toBe(false);
    expect(() => config([], { QWEN_METRICS_PER_WORKER: 'maybe' })).toThrow(/--metrics-per-worker \(from QWEN_METRICS_PER_WORKER\)/);
  });

  it('latency buckets parse and must increase', () => {
    expect(config(['--latency-buckets', '0.01, 0.1,1']).latencyBuckets).toEqual([0.01, 0.1, 1]);
    expect(() => config(['--latency-buckets', '1,0.5'])).toThrow(/--latency-buckets/);
    expect(() => config(['--latency-buckets', 'a,b'])).toThrow(/--latency-buckets/);
    expect(config([]).metricsHost).toBe('127.0.0.1');
    expect(config(['--host', '0.0.0.0']).metricsHost).toBe('0.0.0.0');
  });

  it('env vars set flags, and flags win over env vars', () => {
    expect(config([], { QWEN_PORT: '9000', QWEN_CONTEXT_SIZE: '512' })).toMatchObject({ port: 9000, models: [{ contextSize: 512 }] });
    expect(config(['--port', '9001'], { QWEN_PORT: '9000' }).port).toBe(9001);
    expect(model([], { QWEN_GPU_LAYERS: 'max' }).gpuLayers).toBe('max');
    expect(model(['--gpu-layers', '12']).gpuLayers).toBe(12);
  });

  it.each([
    [['--port', 'abc'], '--port'],
    [['--port', '70000'], '--port'],
    [['--workers', '0'], '--workers'],
    [['--threads', '1.5'], '--threads'],
    [['--context-size', '10'], '--context-size'],
    [['--gpu', 'tpu'], '--gpu'],
    [['--gpu-layers', '-1'], '--gpu-layers'],
    [['--request-timeout', '0'], '--request-timeout'],
    [['--log-level', 'loud'], '--log-level'],
    [['--no-such-flag'], 'no-such-flag'],
  ])('%j exits 2 naming the flag', (args, name) => {
    const { code, err } = cli(args);
    expect(code).toBe(2);
    expect(err).toContain(name);
    expect(err).not.toMatch(/at .*\.js:\d+/); // a message, not a stack trace
  });

  it('a bad env var value exits 2 naming the flag and the variable', () => {
    const { code, err } = cli([], { QWEN_SEQUENCES: 'many' });
    expect(code).toBe(2);
    expect(err).toContain('--sequences');
    expect(err).toContain('QWEN_SEQUENCES');
  });

  it('a missing model file exits 2 naming --model', () => {
    const { code, err } = cli(['--model', '/nonexistent/model.gguf']);
    expect(code).toBe(2);
    expect(err).toContain('--model');
  });

  it('a missing draft model file exits 2 naming --draft-model', () => {
    const { code, err } = cli([
      '--model',
      'demo',
      '--models-dir',
      os.tmpdir(),
      '--speculative',
      'draft',
      '--draft-model',
      '/nonexistent/small.gguf',
    ]);
    expect(code).toBe(2);
    expect(err).toContain('--draft-model: no such file');
  });

  it('--speculative draft needs --draft-model, and --draft-model needs --speculative draft', () => {
    expect(model([]).speculation).toEqual({ draftMin: 2, draftMax: 16, policy: 'adaptive' });
    expect(model(['--speculative', 'draft', '--draft-model', 'small.gguf', '--draft-max', '4']).speculation).toEqual({
      draftMin: 2,
      draftMax: 4,
      policy: 'adaptive',
      draftModel: 'small.gguf',
    });
    expect(model(['--draft-policy', 'always']).speculation?.policy).toBe('always');
    expect(() => config(['--draft-policy', 'greedy'])).toThrow(/--draft-policy must be one of adaptive, always/);
    expect(model(['--speculative', 'draft'], { QWEN_DRAFT_MODEL: 'demo' }).speculation?.draftModel).toBe('demo');
    expect(() => config(['--speculative', 'draft'])).toThrow(/--speculative draft needs --draft-model/);
    // ngram is the default: a draft model given alone most likely misses --speculative draft.
    expect(() => config(['--draft-model', 'small.gguf'])).toThrow(
      /--draft-model is used by --speculative draft, but --speculative is ngram/,
    );
    // With speculation off it is unused, like --draft-max (a model of a --config file may turn off what the file sets).
    expect(model(['--speculative', 'off', '--draft-model', 'small.gguf']).speculation).toBeUndefined();
    expect(() => config(['--speculative', 'fast'])).toThrow(/--speculative must be one of off, ngram, draft/);
  });

  it('offline, the hf: default fails with advice naming --model demo and --model PATH', () => {
    // No network in tests; point at a non-routable host to be sure nothing is downloaded.
    const { code, err } = cli(['--model', 'hf:nobody/nothing-GGUF:Q4_K_M', '--models-dir', os.tmpdir()], {
      HTTPS_PROXY: 'http://127.0.0.1:9',
      HTTP_PROXY: 'http://127.0.0.1:9',
    });
    expect(code).toBe(1);
    expect(err).toContain('--model demo');
    expect(err).toContain('--model PATH');
  });
});

describe('--config FILE', () => {
  const write = tempWriter('qwen-config-');

  it('YAML: flag names as keys, lists joined, switches as booleans, validated by the flags own rules', () => {
    const file = write('a.yaml', 'port: 9123\ncontext-size: 4096\ngpus: [0, 2]\nmetrics-per-worker: true\nno-dashboard: true\n');
    const c = config(['--config', file]);
    expect(c.port).toBe(9123);
    expect(c.models[0]!.contextSize).toBe(4096);
    expect(c.models[0]!.gpus).toEqual([0, 2]);
    expect(c.metricsPerWorker).toBe(true);
    expect(c.dashboard).toBe(false);
    // Derived defaults follow the file's values as they follow flags.
    expect(c.models[0]!.maxRequestTokens).toBe(4 * 4096);
  });

  it('the command line and the environment win over the file; QWEN_CONFIG names the file', () => {
    const file = write('b.json', JSON.stringify({ port: 9123, sequences: 3, 'metrics-per-worker': true }));
    const c = config(['--config', file, '--port', '9200'], { QWEN_SEQUENCES: '5', QWEN_METRICS_PER_WORKER: '0' });
    expect([c.port, c.models[0]!.sequences, c.metricsPerWorker]).toEqual([9200, 5, false]);
    expect(model([], { QWEN_CONFIG: file }).sequences).toBe(3);
  });

  it('errors name the file and the key', () => {
    expect(() => config(['--config', write('c.yaml', 'sequences: 0\n')])).toThrow(/--sequences \(from .*c\.yaml\) must be between 1 and/);
    expect(() => config(['--config', write('d.yaml', 'sequencez: 2\n')])).toThrow(/d\.yaml: unknown key 'sequencez'/);
    expect(() => config(['--config', write('e.yaml', 'metrics-auth: yes please\n')])).toThrow(
      /e\.yaml: metrics-auth must be true or false/,
    );
    expect(() => config(['--config', write('f.yaml', 'port: {a: 1}\n')])).toThrow(/f\.yaml: port must be a string, a number or a list/);
    expect(() => config(['--config', write('g.yaml', '- port\n')])).toThrow(/must hold a mapping of flag names/);
    expect(() => config(['--config', write('h.json', '{"port": ')])).toThrow(/h\.json is not valid JSON/);
    expect(() => config(['--config', path.join(path.dirname(write('present.yaml', '')), 'missing.yaml')])).toThrow(
      /--config .*missing\.yaml cannot be read/,
    );
    expect(() => config(['--config', write('i.yaml', 'config: other.yaml\n')])).toThrow(/unknown key 'config'/);
  });

  it('the server exits 2 at start on a bad file, naming the key and the file', () => {
    const { code, err } = cli(['--config', write('bad.yaml', 'workers: none\n')]);
    expect(code).toBe(2);
    expect(err).toMatch(/--workers \(from .*bad\.yaml\) must be a number/);
  });

  it('an empty file changes nothing', () => {
    expect(config(['--config', write('empty.yaml', '')]).port).toBe(config([]).port);
  });
});

describe('tracing', () => {
  it('is off unless an endpoint is given; the flag and the standard variables turn it on', () => {
    expect(config([]).tracing).toBeUndefined();
    expect(config(['--otlp-endpoint', 'http://collector:4318/']).tracing).toMatchObject({
      url: 'http://collector:4318/v1/traces',
      protocol: 'http/protobuf',
      sampler: 'parentbased_always_on',
      ratio: 1,
      serviceName: 'qwen-serve',
      recordContent: false,
    });
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
      OTEL_SERVICE_NAME: 'rag-api',
      OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20x,x-tenant=a',
    };
    expect(config(['--trace-content'], env).tracing).toEqual({
      url: 'http://c:4318/v1/traces',
      protocol: 'http/json',
      sampler: 'parentbased_traceidratio',
      ratio: 0.25,
      serviceName: 'rag-api',
      headers: { authorization: 'Bearer x', 'x-tenant': 'a' },
      recordContent: true,
    });
    // The traces endpoint is the full URL; it wins over the base one.
    expect(config([], { ...env, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://t/x' }).tracing?.url).toBe('https://t/x');
    expect(config([], { ...env, OTEL_SDK_DISABLED: 'true' }).tracing).toBeUndefined();
    expect(config([], { ...env, OTEL_TRACES_EXPORTER: 'none' }).tracing).toBeUndefined();
  });

  it('refuses what it cannot do, naming the variable', () => {
    const on = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' };
    expect(() => config([], { ...on, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toThrow(/OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported/);
    expect(() => config([], { ...on, OTEL_TRACES_SAMPLER: 'jaeger_remote' })).toThrow(/OTEL_TRACES_SAMPLER=jaeger_remote is not supported/);
    expect(() => config([], { ...on, OTEL_TRACES_SAMPLER_ARG: '2' })).toThrow(/OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1/);
    expect(() => config([], { ...on, OTEL_TRACES_EXPORTER: 'zipkin' })).toThrow(/OTEL_TRACES_EXPORTER=zipkin is not supported/);
    expect(() => config(['--otlp-endpoint', 'collector:4318'])).toThrow(/--otlp-endpoint must be an http\(s\) URL/);
  });
});

describe('several models', () => {
  const write = tempWriter('qwen-models-');
  const served = (argv: string[], env: NodeJS.ProcessEnv = {}) => config(argv, env).models.map((m) => [m.id, m.source]);

  it('--model ID=SOURCE adds a model; a bare SOURCE is the --model-id one, and a later bare SOURCE replaces it', () => {
    expect(served(['--model', 'chat=demo', '--model', 'embed=./e=1.gguf'])).toEqual([
      ['chat', 'demo'],
      ['embed', './e=1.gguf'],
    ]);
    // A path with '=' in it stays a path when what precedes '=' is not an id.
    expect(served(['--model', './a=b.gguf'])).toEqual([[undefined, './a=b.gguf']]);
    expect(served(['--model', 'a.gguf', '--model', 'b.gguf', '--model', 'e=hf:Org/Repo-GGUF:Q8_0', '--model-id', 'main'])).toEqual([
      ['main', 'b.gguf'],
      ['e', 'hf:Org/Repo-GGUF:Q8_0'],
    ]);
    expect(served([], { QWEN_MODEL: 'x=demo' })).toEqual([['x', 'demo']]);
    expect(() => config(['--model', 'a=demo', '--model', 'a=other.gguf'])).toThrow(/the model id 'a' is given twice/);
    expect(() => config(['--model', 'a=demo', '--model-id', 'b'])).toThrow(/--model-id names the model given without an id/);
    const many = Array.from({ length: 17 }, (_, i) => ['--model', `m${i}=demo`]).flat();
    expect(() => config(many)).toThrow(/at most 16 models per server \(got 17\)/);
  });

  it('models: in the config file gives each model its settings over the server-wide flags', () => {
    const file = write(
      'models.yaml',
      [
        'workers: 2',
        'keep-alive: 60',
        'max-resident-models: 2',
        'models:',
        '  chat: { source: demo, context-size: 4096, gpus: [0, 1] }',
        '  embed: { source: ./embed.gguf, gpus: [2], workers: 1, on-demand: true }',
      ].join('\n'),
    );
    const c = config(['--config', file]);
    expect(c.models.map((m) => [m.id, m.source, m.workers, m.contextSize, m.gpus, m.onDemand, m.keepAliveSeconds])).toEqual([
      ['chat', 'demo', 2, 4096, [0, 1], false, 60],
      ['embed', './embed.gguf', 1, 2048, [2], true, 60],
    ]);
    expect(c.models[0]!.maxRequestTokens).toBe(4 * 4096);
    // The largest model's context bounds max_tokens before the model is known.
    expect(c.maxTokensLimit).toBe(4096);
    expect(c.maxResidentModels).toBe(2);
    // The command line picks which models are served; one the file names keeps the file's settings.
    expect(config(['--config', file, '--model', 'chat=other.gguf']).models.map((m) => [m.id, m.source, m.contextSize])).toEqual([
      ['chat', 'other.gguf', 4096],
    ]);
    // A server-wide flag on the command line is every model's default; a model's own setting still wins.
    expect(config(['--config', file, '--context-size', '1024']).models.map((m) => m.contextSize)).toEqual([4096, 1024]);
  });

  it('a draft model per model: one drafts with its own, another keeps the n-gram lookup', () => {
    const file = write(
      'draft.yaml',
      ['models:', '  big: { source: big.gguf, speculative: draft, draft-model: small.gguf }', '  other: { source: other.gguf }'].join('\n'),
    );
    expect(config(['--config', file]).models.map((m) => [m.id, m.speculation?.draftModel])).toEqual([
      ['big', 'small.gguf'],
      ['other', undefined],
    ]);
  });

  it('errors name the file, the model and the key', () => {
    const bad = (name: string, models: string) => () => config(['--config', write(name, `models:\n${models}\n`)]);
    expect(bad('a.yaml', '  chat: { source: demo, workers: 0 }')).toThrow(
      /a\.yaml: models\.chat\.workers must be between 1 and 256 \(got "0"\)/,
    );
    expect(bad('b.yaml', '  chat: { source: demo, port: 1 }')).toThrow(
      /b\.yaml: models\.chat: unknown key 'port' \(a model takes source and /,
    );
    expect(bad('c.yaml', '  chat: { workers: 1 }')).toThrow(/c\.yaml: models\.chat\.source must be/);
    expect(bad('d.yaml', '  chat: demo')).toThrow(/d\.yaml: models\.chat must be a mapping/);
    expect(bad('e.yaml', '  chat: { source: demo, on-demand: yes please }')).toThrow(
      /e\.yaml: models\.chat\.on-demand must be true or false/,
    );
    expect(bad('f.yaml', '  "a b": { source: demo }')).toThrow(/models\.a b: a model id is letters, digits/);
    expect(bad('g.yaml', '  big: { source: big.gguf, speculative: draft }')).toThrow(
      /--speculative draft needs --draft-model .*\(model 'big'\)/,
    );
    expect(() => config(['--model', 'a=demo', '--model', 'b=demo', '--max-resident-models', '1'])).toThrow(
      /--max-resident-models 1 leaves no room: 2 models are not --on-demand/,
    );
    expect(() => config(['--model', 'a=demo', '--on-demand', '--max-resident-models', '1'])).not.toThrow();
  });
});

describe('README', () => {
  it('documents every flag with its env var', async () => {
    const { readFileSync } = await import('node:fs');
    const readme = readFileSync('README.md', 'utf8');
    for (const f of FLAGS) {
      expect(readme).toContain(`| \`--${f.name}\` | \`${envName(f.name)}\` |`);
    }
  });

  it('the Several models example file is valid, and means what its comments say', async () => {
    const { readFileSync } = await import('node:fs');
    const readme = readFileSync('README.md', 'utf8');
    const example = /```yaml\n(# models\.yaml[\s\S]*?)```/.exec(readme)?.[1];
    expect(example).toBeDefined();
    const file = tempWriter('qwen-readme-')('models.yaml', example!);
    const c = config(['--config', file]);
    expect(c.maxResidentModels).toBe(3);
    expect(c.models.map((m) => [m.id, m.gpus, m.onDemand])).toEqual([
      ['chat', [0, 1], false],
      ['embed', [2], false],
      ['draft-review', undefined, true],
    ]);
    expect(c.models[2]!.keepAliveSeconds).toBe(600);
  });
});
