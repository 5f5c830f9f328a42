/**
 * The one place configuration is read: argv (commander) with QWEN_* env fallbacks, validated by the
 * flag table's schemas into a typed Config. Nothing else in the program reads process.env or argv.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { ConfigError } from '../errors.js';
import { readConfigFile, type ConfigFile, type FileModel } from './file.js';
import type { DraftPolicy, GpuLayers, GpuMode } from '../shared/protocol.js';
import type { SchemaLimits } from '../structured/json-schema.js';
import { FLAGS, defaultThreads, envName, type FlagName, type FlagSpec, type FlagValues } from './options.js';

/** `--allowed-hosts`: auto (decided by the listen address), * (any), or names (`.example.com`: it and its subdomains). */
export type AllowedHosts = 'auto' | '*' | readonly string[];

/** `--gpus`: every GPU NVML reports, engine processes without GPUs, or the listed indices. */
export type GpusFlag = 'all' | 'none' | number[];

/**
 * One served model: where it comes from and its own settings (a `models:` entry of --config, else the
 * server-wide flag). Each model has its own engines, pool and admission queue.
 */
export interface ModelConfig {
  /** The id requests name: from ID=SOURCE, a `models:` key or --model-id; undefined = the file name once resolved. */
  id?: string;
  /** A .gguf path, an hf: URI or `demo`. */
  source: string;
  workers: number;
  /** CPU threads per worker; undefined = derived from the cores and every model's workers (threadsPerWorker). */
  threads?: number;
  /** --gpus; undefined = the pool runs in the server's own process (unless --engines is given). */
  gpus?: GpusFlag;
  /** --engines; undefined = one engine process per --gpus entry. */
  engines?: number;
  sequences: number;
  contextSize: number;
  batchSize: number;
  maxQueue: number;
  gpuLayers: GpuLayers;
  /** Budget of one request: tokens generated over all its choices, and log probabilities returned. */
  maxRequestTokens: number;
  maxRequestLogprobs: number;
  /** Loaded at its first request, unloaded after keepAliveSeconds unused. */
  onDemand: boolean;
  keepAliveSeconds: number;
  /** Speculative decoding (--speculative ngram or draft, --draft-min, --draft-max); undefined = off. */
  speculation?: SpeculationConfig;
}

interface SpeculationConfig {
  /** Fewest and most draft tokens a sequence verifies in one step. */
  draftMin: number;
  draftMax: number;
  /** --draft-policy. */
  policy: DraftPolicy;
  /** --speculative draft: the draft model's source (a .gguf path, an hf: URI or `demo`, as --model); undefined = n-gram lookup. */
  draftModel?: string;
}

/** Most models one server serves: each is a `model` label value of many series. */
const MAX_MODELS = 16;

export interface Config {
  /** The served models, in the order given; the first of each kind is the default for requests that name none. */
  models: ModelConfig[];
  modelsDir: string;
  host: string;
  port: number;
  logLevel: string;
  /** Most models resident at once (0: no limit); only on-demand models are unloaded to keep to it. */
  maxResidentModels: number;
  requestTimeoutSeconds: number;
  drainTimeoutSeconds: number;
  bodyLimitBytes: number;
  /** The compute backend (one node-llama-cpp binary per process, so server-wide). */
  gpu: GpuMode;
  metricsPort: number;
  metricsHost: string;
  metricsPerWorker: boolean;
  metricsTimeoutSeconds: number;
  latencyBuckets: number[];
  nvmlLibrary: string;
  /** Largest max_tokens a request may name, checked when its body is read (before its model is known). */
  maxTokensLimit: number;
  maxMessages: number;
  maxStop: number;
  /** Bounds on a request's schemas and the grammar composed from them. */
  schemaLimits: SchemaLimits;
  maxGrammarRules: number;
  grammarCacheSize: number;
  tokenizerThreads: number;
  /** Deepest nesting of arrays and objects in a request body and in the JSON strings it carries. */
  maxJsonDepth: number;
  /** Accepted API keys (from --api-key and --api-key-file); empty = no auth. */
  apiKeys: string[];
  metricsAuth: boolean;
  /** Allowed CORS origins ('*' for any); undefined = CORS off. */
  corsOrigins?: string[] | '*';
  /** Host header values the API and metrics ports answer (DNS rebinding guard). */
  allowedHosts: AllowedHosts;
  /** The /dashboard page and its history sampler (off with --no-dashboard). */
  dashboard: boolean;
  /** QWEN_TEST_FAULTS=1 enables the test-only fault markers (workers/faults.ts); not a flag on purpose. */
  testFaults: boolean;
  /** OpenTelemetry tracing; undefined = off (and the SDK is never loaded). */
  tracing?: TracingConfig;
}

/** The OTLP samplers of OTEL_TRACES_SAMPLER (the SDK's names). */
const SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;

export interface TracingConfig {
  /** Where spans are sent: the full OTLP/HTTP traces URL. */
  url: string;
  protocol: 'http/protobuf' | 'http/json';
  headers: Record<string, string>;
  sampler: (typeof SAMPLERS)[number];
  /** For the *traceidratio samplers: the share of traces kept (0-1). */
  ratio: number;
  serviceName: string;
  /** Prompt and completion text on the spans (--trace-content). */
  recordContent: boolean;
}

/** The package's version, from its package.json (found upward from this file, in src/ or dist/src/). */
export const VERSION: string = packageVersion(path.dirname(fileURLToPath(import.meta.url)));

function packageVersion(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'qwen-serve' && pkg.version) return pkg.version;
    }
    if (path.dirname(dir) === dir) throw new Error(`qwen-serve's package.json not found above ${from}`);
  }
}

/**
 * CPU threads per worker: the model's --threads, else the cores shared by every worker of every engine of
 * every model (ggml threads spin while they wait).
 * @param allWorkers model workers of the whole server: each model's workers × its engines
 */
export function threadsPerWorker(model: Pick<ModelConfig, 'threads'>, allWorkers: number): number {
  return model.threads ?? defaultThreads(allWorkers);
}

function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function buildCommand(): Command {
  const cmd = new Command('qwen-serve')
    .description('OpenAI-compatible inference server for Qwen2.5 GGUF models, observable by Prometheus')
    .version(VERSION)
    .allowExcessArguments(false)
    .showHelpAfterError('(run qwen-serve --help for every flag)')
    .configureHelp({ helpWidth: 120 });
  for (const f of FLAGS) {
    // Computed defaults have no value to show, so their description says what they are.
    const description = 'default' in f ? f.description : `${f.description} (default: ${f.defaultText})`;
    if ('boolean' in f) {
      // Commander would treat any value of a switch's env var (even "0") as on: parseConfig reads it.
      cmd.addOption(new Option(`--${f.name}`, `${description} (env: ${envName(f.name)})`));
      continue;
    }
    const opt = new Option(`--${f.name} <${f.arg}>`, description).env(envName(f.name));
    // Every value of a repeated flag counts (the first replaces the default, which is a string, not a list).
    if ('repeatable' in f)
      opt.argParser((value: string, previous: unknown): string[] => [...(Array.isArray(previous) ? (previous as string[]) : []), value]);
    if ('default' in f) opt.default(f.default);
    cmd.addOption(opt);
  }
  return cmd;
}

function apiKeys(key: string | undefined, file: string | undefined): string[] {
  const keys = key ? [key] : [];
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`--api-key-file cannot be read: ${(err as Error).message}`);
    }
    const fromFile = text
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    if (fromFile.length === 0) throw new ConfigError(`--api-key-file ${file} holds no key`);
    keys.push(...fromFile);
  }
  return keys;
}

function corsOrigins(value: string | undefined): string[] | '*' | undefined {
  if (value === undefined) return undefined;
  if (value.trim() === '*') return '*';
  return value
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
}

export type ParseResult = { kind: 'config'; config: Config } | { kind: 'exit'; code: number; output: string };

/**
 * Parses argv (without node and script) and env. Bad flags raise ConfigError (exit code 2) naming
 * the flag; --help and --version come back as { kind: 'exit', code: 0 }.
 */
export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): ParseResult {
  const cmd = buildCommand();
  let output = '';
  cmd.exitOverride().configureOutput({ writeOut: (s) => (output += s), writeErr: (s) => (output += s) });
  const savedEnv = process.env;
  try {
    // commander reads env vars from process.env; point it at the given env for the parse.
    process.env = env;
    cmd.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return { kind: 'exit', code: 0, output };
      throw new ConfigError(output.trim() || err.message);
    }
    throw err;
  } finally {
    process.env = savedEnv;
  }
  const raw = cmd.opts<Record<string, string | string[] | boolean | undefined>>();
  const configFile = typeof raw.config === 'string' ? raw.config.trim() : undefined;
  const file: ConfigFile = configFile ? readConfigFile(configFile, FLAGS) : { values: new Map(), models: new Map() };
  const parsed: Partial<Record<FlagName, unknown>> = {};
  for (const f of FLAGS) {
    if ('repeatable' in f) continue;
    let given: unknown = raw[camel(f.name)];
    const source = cmd.getOptionValueSource(camel(f.name));
    let from = source === 'env' ? envName(f.name) : undefined;
    // The file fills what neither the command line nor the environment gave.
    if (!('boolean' in f) && source !== 'cli' && source !== 'env' && file.values.has(f.name)) {
      given = file.values.get(f.name);
      from = configFile;
    }
    // Commander reads `--no-x` as option x (true by default, false when given); the table's switch is `no-x`.
    if ('boolean' in f && f.name.startsWith('no-')) given = cmd.getOptionValueSource(camel(f.name.slice(3))) === 'cli' ? true : undefined;
    if ('boolean' in f && given === undefined) {
      const fromEnv = env[envName(f.name)];
      given = fromEnv ?? file.values.get(f.name) ?? f.default;
      from = fromEnv !== undefined ? envName(f.name) : file.values.has(f.name) ? configFile : undefined;
    }
    if (given === undefined) continue;
    parsed[f.name] = checked(f, given, `--${f.name}${from ? ` (from ${from})` : ''}`);
  }
  // Each value is its flag's schema output (present when the flag has a default): FlagValues says which.
  const values = parsed as FlagValues;
  // The command line's --model values, else QWEN_MODEL, else the file's model (the default is servedModels' to apply).
  const modelSource = cmd.getOptionValueSource('model');
  const modelArgs = modelSource === 'cli' || modelSource === 'env' ? [raw.model as string | string[]].flat() : file.model;
  const entries = servedModels(modelArgs, file.models, configFile);
  if (values['model-id'] !== undefined && entries.every((e) => e.id !== undefined)) {
    throw new ConfigError('--model-id names the model given without an id (--model SOURCE); every model here has its own (ID=SOURCE)');
  }
  const models = entries.map(({ id, source, settings }) =>
    modelConfig(id, source, { ...values, ...perModelValues(settings, `--config ${configFile}: models.${id}`) }),
  );
  const config = toConfig(values, models, env);
  if (config.metricsAuth && config.apiKeys.length === 0) throw new ConfigError('--metrics-auth needs --api-key or --api-key-file');
  return { kind: 'config', config };
}

/** A flag's value through its schema, or a ConfigError naming `where` and why. */
function checked(f: FlagSpec, given: unknown, where: string): unknown {
  const result = f.schema.safeParse(given);
  if (result.success) return result.data;
  const why = result.error.issues[0]?.message ?? 'is invalid';
  const got = f.secret ? '' : ` (got ${JSON.stringify(given)})`;
  throw new ConfigError(`${where} ${why}${got}`);
}

/** A model's own settings from its `models:` entry, each checked by its flag's schema. */
function perModelValues(settings: Map<string, string> | undefined, where: string): Partial<FlagValues> {
  const out: Partial<Record<FlagName, unknown>> = {};
  for (const [name, text] of settings ?? []) {
    const f = FLAGS.find((x) => x.name === name)!;
    out[f.name] = checked(f, text, `${where}.${name}`);
  }
  return out as Partial<FlagValues>;
}

/** `ID=SOURCE`: an id of letters, digits and . _ : - before the first `=` (a path with `=` is written ./a=b.gguf). */
const ID_SOURCE = /^([A-Za-z0-9][A-Za-z0-9._:-]{0,127})=(.+)$/;
const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;

interface ServedModel {
  id: string | undefined;
  source: string;
  settings?: Map<string, string>;
}

/**
 * Which models are served: the --model values (command line, else QWEN_MODEL, else the file's `model`), else the
 * file's `models`, else the default model. A bare SOURCE is the model of --model-id (the last bare one wins, so a
 * later --model replaces an earlier one as it always has); `ID=SOURCE` adds a model, taking its settings from the
 * file's `models` entry of that id if there is one.
 */
function servedModels(args: string[] | undefined, fileModels: Map<string, FileModel>, configFile: string | undefined): ServedModel[] {
  const entries: ServedModel[] = [];
  if (args && args.length > 0) {
    let bare: ServedModel | undefined;
    for (const arg of args) {
      const value = arg.trim();
      if (value === '') throw new ConfigError('--model must not be empty');
      const m = ID_SOURCE.exec(value);
      if (!m) {
        bare = { id: undefined, source: value };
        continue;
      }
      const [, id, source] = m as unknown as [string, string, string];
      entries.push({ id, source: source.trim(), settings: fileModels.get(id)?.settings });
    }
    if (bare) entries.unshift(bare);
  } else if (fileModels.size > 0) {
    for (const [id, m] of fileModels) {
      if (!MODEL_ID.test(id)) {
        throw new ConfigError(`--config ${configFile}: models.${id}: a model id is letters, digits and . _ : / - (at most 128)`);
      }
      entries.push({ id, ...m });
    }
  } else {
    entries.push({ id: undefined, source: FLAGS.find((f) => f.name === 'model')!.default });
  }
  if (entries.length > MAX_MODELS) throw new ConfigError(`--model: at most ${MAX_MODELS} models per server (got ${entries.length})`);
  const ids = entries.flatMap((e) => (e.id === undefined ? [] : [e.id]));
  const twice = ids.find((id, i) => ids.indexOf(id) !== i);
  if (twice !== undefined) throw new ConfigError(`--model: the model id '${twice}' is given twice`);
  return entries;
}

/** One model's settings: its own values over the server-wide flags, with the defaults that derive from them. */
function modelConfig(id: string | undefined, source: string, v: FlagValues): ModelConfig {
  return {
    id: id ?? v['model-id'],
    source,
    workers: v.workers,
    threads: v.threads,
    gpus: v.gpus,
    engines: v.engines,
    sequences: v.sequences,
    contextSize: v['context-size'],
    batchSize: v['batch-size'],
    maxQueue: v['max-queue'],
    gpuLayers: v['gpu-layers'],
    maxRequestTokens: v['max-request-tokens'] ?? 4 * v['context-size'],
    maxRequestLogprobs: v['max-request-logprobs'],
    onDemand: v['on-demand'],
    keepAliveSeconds: v['keep-alive'],
    speculation: speculation(id, v),
  };
}

function speculation(id: string | undefined, v: FlagValues): SpeculationConfig | undefined {
  const where = id === undefined ? '' : ` (model '${id}')`;
  const draftModel = v['draft-model'];
  // With speculation off a draft model is unused, like --draft-max; with ngram it is a mistake (ngram is the default).
  if (draftModel !== undefined && v.speculative === 'ngram') {
    throw new ConfigError(`--draft-model is used by --speculative draft, but --speculative is ngram${where}`);
  }
  if (v.speculative === 'off') return undefined;
  if (v.speculative === 'draft' && draftModel === undefined) {
    throw new ConfigError(`--speculative draft needs --draft-model (a small model with the same vocabulary)${where}`);
  }
  if (v['draft-min'] > v['draft-max']) {
    throw new ConfigError(`--draft-min ${v['draft-min']} is more than --draft-max ${v['draft-max']}${where}`);
  }
  return {
    draftMin: v['draft-min'],
    draftMax: v['draft-max'],
    policy: v['draft-policy'],
    ...(v.speculative === 'draft' && { draftModel }),
  };
}

/** The typed flag values as the program's Config (derived values: defaults that depend on other flags). */
function toConfig(values: FlagValues, models: ModelConfig[], env: NodeJS.ProcessEnv): Config {
  const limit = values['max-resident-models'];
  const alwaysResident = models.filter((m) => !m.onDemand).length;
  // Room for every model that is never unloaded, and for one on-demand model at a time.
  const needed = alwaysResident + (models.some((m) => m.onDemand) ? 1 : 0);
  if (limit > 0 && needed > limit) {
    throw new ConfigError(
      `--max-resident-models ${limit} leaves no room: ${alwaysResident} models are not --on-demand (they are never unloaded)${needed > alwaysResident ? ' and an on-demand model needs one more' : ''}`,
    );
  }
  return {
    models,
    modelsDir: path.resolve(values['models-dir']),
    host: values.host,
    port: values.port,
    logLevel: values['log-level'],
    maxResidentModels: values['max-resident-models'],
    requestTimeoutSeconds: values['request-timeout'],
    drainTimeoutSeconds: values['drain-timeout'],
    bodyLimitBytes: values['body-limit'],
    gpu: values.gpu,
    metricsPort: values['metrics-port'],
    metricsHost: values['metrics-host'] ?? values.host,
    metricsPerWorker: values['metrics-per-worker'],
    metricsTimeoutSeconds: values['metrics-timeout'],
    latencyBuckets: values['latency-buckets'],
    nvmlLibrary: values['nvml-library'],
    maxTokensLimit: values['max-tokens-limit'] ?? Math.max(...models.map((m) => m.contextSize)),
    maxMessages: values['max-messages'],
    maxStop: values['max-stop'],
    schemaLimits: {
      maxBytes: values['max-schema-bytes'],
      maxEnumValues: values['max-enum-values'],
      maxAlternatives: values['max-schema-alternatives'],
    },
    maxGrammarRules: values['max-grammar-rules'],
    grammarCacheSize: values['grammar-cache'],
    tokenizerThreads: values['tokenizer-threads'],
    maxJsonDepth: values['max-json-depth'],
    apiKeys: apiKeys(values['api-key'], values['api-key-file']),
    metricsAuth: values['metrics-auth'],
    corsOrigins: corsOrigins(values['cors-origin']),
    allowedHosts: values['allowed-hosts'],
    dashboard: !values['no-dashboard'],
    testFaults: env.QWEN_TEST_FAULTS === '1',
    tracing: tracingConfig(values['otlp-endpoint'], values['trace-content'], env),
  };
}

/**
 * Tracing from --otlp-endpoint or OpenTelemetry's standard variables (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is the
 * full traces URL; OTEL_EXPORTER_OTLP_ENDPOINT and the flag are base URLs, to which /v1/traces is added, as the
 * OpenTelemetry specification says). Off unless an endpoint is given; OTEL_SDK_DISABLED=true or
 * OTEL_TRACES_EXPORTER=none turn it off.
 */
function tracingConfig(flag: string | undefined, recordContent: boolean, env: NodeJS.ProcessEnv): TracingConfig | undefined {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return undefined;
  const exporter = env.OTEL_TRACES_EXPORTER?.trim().toLowerCase();
  if (exporter === 'none') return undefined;
  if (exporter !== undefined && exporter !== '' && exporter !== 'otlp') {
    throw new ConfigError(`OTEL_TRACES_EXPORTER=${exporter} is not supported: qwen-serve exports traces with otlp (or none)`);
  }
  const base = (url: string) => `${url.replace(/\/+$/, '')}/v1/traces`;
  const tracesUrl = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  const baseUrl = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  const url = flag ? base(flag) : tracesUrl ? tracesUrl : baseUrl ? base(baseUrl) : undefined;
  if (url === undefined) return undefined;
  if (!/^https?:\/\/[^\s]+$/i.test(url))
    throw new ConfigError(`the OTLP traces endpoint must be an http(s) URL (got ${JSON.stringify(url)})`);
  const protocol = (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf').trim();
  if (protocol !== 'http/protobuf' && protocol !== 'http/json') {
    throw new ConfigError(`OTEL_EXPORTER_OTLP_PROTOCOL=${protocol} is not supported: use http/protobuf or http/json`);
  }
  const sampler = (env.OTEL_TRACES_SAMPLER ?? 'parentbased_always_on').trim().toLowerCase();
  if (!(SAMPLERS as readonly string[]).includes(sampler)) {
    throw new ConfigError(`OTEL_TRACES_SAMPLER=${sampler} is not supported: use one of ${SAMPLERS.join(', ')}`);
  }
  const arg = env.OTEL_TRACES_SAMPLER_ARG?.trim();
  const ratio = arg === undefined || arg === '' ? 1 : Number(arg);
  if (!(ratio >= 0 && ratio <= 1))
    throw new ConfigError(`OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1 (got ${JSON.stringify(arg)})`);
  return {
    url,
    protocol,
    headers: otlpHeaders(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS ?? env.OTEL_EXPORTER_OTLP_HEADERS),
    sampler: sampler as TracingConfig['sampler'],
    ratio,
    serviceName: env.OTEL_SERVICE_NAME?.trim() || 'qwen-serve',
    recordContent,
  };
}

/** OTEL_EXPORTER_OTLP_HEADERS: `key=value` pairs, comma-separated, values percent-encoded (W3C baggage style). */
function otlpHeaders(text: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const pair of (text ?? '').split(',')) {
    const at = pair.indexOf('=');
    if (at <= 0) continue;
    headers[pair.slice(0, at).trim()] = decodeURIComponent(pair.slice(at + 1).trim());
  }
  return headers;
}
