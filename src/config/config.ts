/**
 * The one place configuration is read: argv (commander) with QWEN_* env fallbacks, validated by the
 * flag table's schemas into a typed Config. Nothing else in the program reads process.env or argv.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { ConfigError } from '../errors.js';
import { readConfigFile } from './file.js';
import type { GpuLayers, GpuMode } from '../shared/protocol.js';
import type { SchemaLimits } from '../structured/json-schema.js';
import { FLAGS, defaultThreads, envName, type FlagName, type FlagValues } from './options.js';

/** `--allowed-hosts`: auto (decided by the listen address), * (any), or names (`.example.com`: it and its subdomains). */
export type AllowedHosts = 'auto' | '*' | readonly string[];

/** `--gpus`: every GPU NVML reports, engine processes without GPUs, or the listed indices. */
export type GpusFlag = 'all' | 'none' | number[];

export interface Config {
  model: string;
  modelsDir: string;
  modelId?: string;
  host: string;
  port: number;
  logLevel: string;
  workers: number;
  /** CPU threads per worker; undefined = derived from the cores and the engine count (engine/create.ts). */
  threads?: number;
  /** --gpus; undefined = the pool runs in the server's own process (unless --engines is given). */
  gpus?: GpusFlag;
  /** --engines; undefined = one engine process per --gpus entry. */
  engines?: number;
  sequences: number;
  contextSize: number;
  batchSize: number;
  maxQueue: number;
  requestTimeoutSeconds: number;
  drainTimeoutSeconds: number;
  bodyLimitBytes: number;
  gpu: GpuMode;
  gpuLayers: GpuLayers;
  metricsPort: number;
  metricsHost: string;
  metricsPerWorker: boolean;
  metricsTimeoutSeconds: number;
  latencyBuckets: number[];
  nvmlLibrary: string;
  maxTokensLimit: number;
  maxMessages: number;
  maxStop: number;
  /** Budget of one request: tokens generated over all its choices, and log probabilities returned. */
  maxRequestTokens: number;
  maxRequestLogprobs: number;
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

/** CPU threads per worker: --threads, else the cores shared by every worker of every engine (ggml threads spin while they wait). */
export function threadsPerWorker(config: Pick<Config, 'threads' | 'workers'>, engines: number): number {
  return config.threads ?? defaultThreads(config.workers * engines);
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
  const raw = cmd.opts<Record<string, string | boolean | undefined>>();
  const configFile = typeof raw.config === 'string' ? raw.config.trim() : undefined;
  const file = configFile ? readConfigFile(configFile, FLAGS) : new Map<string, string>();
  const parsed: Partial<Record<FlagName, unknown>> = {};
  for (const f of FLAGS) {
    let given: unknown = raw[camel(f.name)];
    const source = cmd.getOptionValueSource(camel(f.name));
    let from = source === 'env' ? envName(f.name) : undefined;
    // The file fills what neither the command line nor the environment gave.
    if (!('boolean' in f) && source !== 'cli' && source !== 'env' && file.has(f.name)) {
      given = file.get(f.name);
      from = configFile;
    }
    // Commander reads `--no-x` as option x (true by default, false when given); the table's switch is `no-x`.
    if ('boolean' in f && f.name.startsWith('no-')) given = cmd.getOptionValueSource(camel(f.name.slice(3))) === 'cli' ? true : undefined;
    if ('boolean' in f && given === undefined) {
      const fromEnv = env[envName(f.name)];
      given = fromEnv ?? file.get(f.name) ?? f.default;
      from = fromEnv !== undefined ? envName(f.name) : file.has(f.name) ? configFile : undefined;
    }
    if (given === undefined) continue;
    const result = f.schema.safeParse(given);
    if (!result.success) {
      const source = from ? ` (from ${from})` : '';
      const why = result.error.issues[0]?.message ?? 'is invalid';
      const got = 'secret' in f ? '' : ` (got ${JSON.stringify(given)})`;
      throw new ConfigError(`--${f.name}${source} ${why}${got}`);
    }
    parsed[f.name] = result.data;
  }
  // Each value is its flag's schema output (present when the flag has a default): FlagValues says which.
  const config = toConfig(parsed as FlagValues, env);
  if (config.metricsAuth && config.apiKeys.length === 0) throw new ConfigError('--metrics-auth needs --api-key or --api-key-file');
  return { kind: 'config', config };
}

/** The typed flag values as the program's Config (derived values: defaults that depend on other flags). */
function toConfig(values: FlagValues, env: NodeJS.ProcessEnv): Config {
  return {
    model: values.model,
    modelsDir: path.resolve(values['models-dir']),
    modelId: values['model-id'],
    host: values.host,
    port: values.port,
    logLevel: values['log-level'],
    workers: values.workers,
    threads: values.threads,
    gpus: values.gpus,
    engines: values.engines,
    sequences: values.sequences,
    contextSize: values['context-size'],
    batchSize: values['batch-size'],
    maxQueue: values['max-queue'],
    requestTimeoutSeconds: values['request-timeout'],
    drainTimeoutSeconds: values['drain-timeout'],
    bodyLimitBytes: values['body-limit'],
    gpu: values.gpu,
    gpuLayers: values['gpu-layers'],
    metricsPort: values['metrics-port'],
    metricsHost: values['metrics-host'] ?? values.host,
    metricsPerWorker: values['metrics-per-worker'],
    metricsTimeoutSeconds: values['metrics-timeout'],
    latencyBuckets: values['latency-buckets'],
    nvmlLibrary: values['nvml-library'],
    maxTokensLimit: values['max-tokens-limit'] ?? values['context-size'],
    maxMessages: values['max-messages'],
    maxStop: values['max-stop'],
    maxRequestTokens: values['max-request-tokens'] ?? 4 * values['context-size'],
    maxRequestLogprobs: values['max-request-logprobs'],
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
  };
}
