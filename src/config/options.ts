/**
 * The one table of every flag: its env var, default, help text and validator. The CLI, the README
 * and the config loader all derive from it, so a flag cannot exist in one place and not another.
 */
import os from 'node:os';
import { z } from 'zod';
import { DEFAULT_TIME_BUCKETS } from '../metrics/definitions.js';
import { DRAFT_POLICIES, GPU_MODES, SPECULATIVE_MODES } from '../shared/protocol.js';

const DEFAULT_MODEL = 'hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M';

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce
    .number({ error: 'must be a number' })
    .refine((n) => Number.isInteger(n), 'must be an integer')
    .refine((n) => n >= min && n <= max, max === Number.MAX_SAFE_INTEGER ? `must be at least ${min}` : `must be between ${min} and ${max}`);

const positiveSeconds = z.coerce
  .number({ error: 'must be a number' })
  .refine((n) => Number.isFinite(n) && n > 0, 'must be a positive number of seconds');

const nonEmpty = z.string().trim().min(1, 'must not be empty');

export interface FlagSpec {
  /** Long flag name without dashes; env var is QWEN_<NAME_UPPER_SNAKE>. */
  name: string;
  /** Placeholder shown in --help. */
  arg: string;
  description: string;
  /** Default as the user would type it; undefined = computed (described in `defaultText`). */
  default?: string;
  defaultText?: string;
  schema: z.ZodType;
  /**
   * A switch without a value (`--flag`); its env var takes 1/true/yes or 0/false/no. A switch named
   * `no-x` turns something that is on by default off (`--no-x`, env QWEN_NO_X=1).
   */
  boolean?: true;
  /** Never echoed in messages or logs. */
  secret?: true;
  /** A setting each served model may have of its own (a `models:` entry of --config); the flag is every model's default. */
  perModel?: true;
  /** Given more than once, each value counts (--model); its env var and config key give one value, or a list in the file. */
  repeatable?: true;
}

const bucketList = z
  .string()
  .transform((s) => s.split(',').map((x) => Number(x.trim())))
  .refine((a) => a.length > 0 && a.every((n) => Number.isFinite(n) && n > 0), 'must be a comma-separated list of positive numbers')
  .refine((a) => a.every((n, i) => i === 0 || n > a[i - 1]!), 'must be in increasing order');

/** --gpus: all, none, or distinct device indices. */
const gpuList = z
  .string()
  .trim()
  .toLowerCase()
  .transform((s): 'all' | 'none' | number[] =>
    s === 'all' || s === 'none' ? s : s.split(',').map((x) => (/^\d+$/.test(x.trim()) ? Number(x) : NaN)),
  )
  .refine((v) => typeof v === 'string' || v.every((n) => Number.isInteger(n) && n <= 1024), 'must be all, none or GPU indices like 0,2')
  .refine(
    (v) => typeof v === 'string' || new Set(v).size === v.length,
    'must not list a GPU twice (use --engines for several engines per GPU)',
  );

/** --allowed-hosts: auto, * (any), or host names; a leading dot allows the name and its subdomains. */
const hostList = z
  .string()
  .trim()
  .toLowerCase()
  .transform((s): 'auto' | '*' | string[] => {
    if (s === 'auto') return s;
    const names = s.split(',').map((h) => h.trim());
    return names.includes('*') ? '*' : names;
  })
  .refine(
    (v) => typeof v === 'string' || v.every((h) => /^\.?[a-z0-9_-]+(\.[a-z0-9_-]+)*$|^\[[0-9a-f:.]+\]$/.test(h)),
    'must be auto, * or comma-separated host names without ports (a leading dot allows the name and its subdomains)',
  );

const switchValue = z
  .union([z.boolean(), z.string().trim().toLowerCase()])
  .transform((v) =>
    typeof v === 'boolean' ? v : ['1', 'true', 'yes', 'on'].includes(v) ? true : ['', '0', 'false', 'no', 'off'].includes(v) ? false : v,
  )
  .refine((v): v is boolean => typeof v === 'boolean', 'must be 1/true/yes or 0/false/no');

export const FLAGS = [
  {
    name: 'config',
    arg: 'file',
    description:
      'a YAML or JSON file of flag values, keyed by flag name (port: 8080, gpus: [0, 2]); a flag on the command line or in the environment wins over the file',
    defaultText: 'none',
    schema: nonEmpty,
  },
  {
    name: 'model',
    arg: '[id=]path|hf:uri|demo',
    description:
      'GGUF model: a local .gguf path, an hf: URI (downloaded to --models-dir), or "demo" (a tiny random-weight model generated locally); repeat as ID=SOURCE to serve several models, each under its id',
    default: DEFAULT_MODEL,
    schema: nonEmpty,
    repeatable: true,
  },
  {
    name: 'models-dir',
    arg: 'dir',
    description: 'where downloaded and demo models are cached',
    default: './models',
    schema: nonEmpty,
  },
  {
    name: 'model-id',
    arg: 'id',
    description: 'model id in /v1/models and responses, for the --model given without ID=',
    defaultText: 'the model file name without .gguf',
    schema: nonEmpty,
  },
  { name: 'host', arg: 'addr', description: 'address the API listens on', default: '127.0.0.1', schema: nonEmpty },
  { name: 'port', arg: 'n', description: 'API port (0 picks a free one)', default: '8080', schema: int(0, 65535) },
  {
    name: 'log-level',
    arg: 'level',
    description: 'fatal|error|warn|info|debug|trace|silent',
    default: 'info',
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      error: 'must be one of fatal, error, warn, info, debug, trace, silent',
    }),
  },
  {
    name: 'workers',
    arg: 'n',
    description: 'model worker threads (each loads the model once), per engine process with --gpus/--engines',
    default: '1',
    schema: int(1, 256),
    perModel: true,
  },
  {
    name: 'threads',
    arg: 'n',
    description: 'CPU threads per worker',
    defaultText: 'cores ÷ (workers × engine processes), at least 1',
    schema: int(1, 1024),
    perModel: true,
  },
  {
    name: 'gpus',
    arg: 'all|none|0,2,…',
    description:
      'one engine process per listed GPU, pinned to it with CUDA_VISIBLE_DEVICES (all = every GPU NVML sees; none = engine processes without GPUs)',
    defaultText: 'unset: the pool runs in the server process and --gpu picks the device',
    schema: gpuList,
    perModel: true,
  },
  {
    name: 'engines',
    arg: 'n',
    description: 'number of engine processes (spread over the --gpus entries in turn; on CPU without --gpus), e.g. for crash isolation',
    defaultText: 'one per --gpus entry',
    schema: int(1, 64),
    perModel: true,
  },
  {
    name: 'sequences',
    arg: 'n',
    description: 'concurrent requests batched in one context per worker',
    default: '8',
    schema: int(1, 256),
    perModel: true,
  },
  {
    name: 'context-size',
    arg: 'tokens',
    description: 'context tokens per sequence (prompt + completion)',
    default: '2048',
    schema: int(64, 1 << 20),
    perModel: true,
  },
  {
    name: 'batch-size',
    arg: 'tokens',
    description: 'tokens evaluated per decode batch in a worker',
    default: '512',
    schema: int(1, 1 << 20),
    perModel: true,
  },
  {
    name: 'speculative',
    arg: 'off|ngram|draft',
    description:
      'speculative decoding: draft tokens by n-gram lookup over the prompt and the answer (ngram) or with a small model (draft, --draft-model), verified in the decode step (the output is the same)',
    default: 'ngram',
    schema: z.enum(SPECULATIVE_MODES, { error: `must be one of ${SPECULATIVE_MODES.join(', ')}` }),
    perModel: true,
  },
  {
    name: 'draft-model',
    arg: 'path|hf:uri|demo',
    description:
      'the draft model of --speculative draft: a small GGUF with the same vocabulary as the model (e.g. Qwen2.5-0.5B for a larger Qwen2.5), given like --model; each worker loads it beside the model',
    defaultText: 'none',
    schema: nonEmpty,
    perModel: true,
  },
  {
    name: 'draft-max',
    arg: 'n',
    description: 'most draft tokens a sequence verifies in one decode step (--speculative)',
    default: '16',
    schema: int(1, 64),
    perModel: true,
  },
  {
    name: 'draft-min',
    arg: 'n',
    description: 'fewest draft tokens a step verifies; a shorter draft is not tried (--speculative)',
    default: '2',
    schema: int(1, 64),
    perModel: true,
  },
  {
    name: 'draft-policy',
    arg: 'adaptive|always',
    description:
      "how long a step's drafts are: adaptive (the length that promises the most tokens per second from each sequence's recent acceptance and the measured step costs; none when drafting does not pay) or always (every draft on offer, up to --draft-max: for hardware where verifying is nearly free, and for reproducible tests)",
    default: 'adaptive',
    schema: z.enum(DRAFT_POLICIES, { error: `must be one of ${DRAFT_POLICIES.join(', ')}` }),
    perModel: true,
  },
  {
    name: 'max-queue',
    arg: 'n',
    description: 'requests that may wait beyond all sequences; more get 429',
    default: '64',
    schema: int(0, 1_000_000),
    perModel: true,
  },
  {
    name: 'on-demand',
    arg: '',
    description: 'load the model at its first request instead of at start, and unload it after --keep-alive unused (per model in --config)',
    default: 'false',
    schema: switchValue,
    boolean: true,
    perModel: true,
  },
  {
    name: 'keep-alive',
    arg: 'seconds',
    description: 'how long an --on-demand model stays loaded after its last request',
    default: '300',
    schema: positiveSeconds,
    perModel: true,
  },
  {
    name: 'max-resident-models',
    arg: 'n',
    description:
      'most models loaded at once; loading an --on-demand model beyond it first unloads the idle on-demand model used longest ago (0: no limit)',
    default: '0',
    schema: int(0, 64),
  },
  {
    name: 'request-timeout',
    arg: 'seconds',
    description: 'end a request (queued or running) after this long',
    default: '600',
    schema: positiveSeconds,
  },
  {
    name: 'drain-timeout',
    arg: 'seconds',
    description: 'on SIGTERM/SIGINT, how long in-flight requests may finish',
    default: '30',
    schema: positiveSeconds,
  },
  { name: 'body-limit', arg: 'bytes', description: 'largest accepted request body', default: '1048576', schema: int(1024, 1 << 30) },
  {
    name: 'max-tokens-limit',
    arg: 'n',
    description: 'largest max_tokens a request may ask for (a model also holds each request to its context size)',
    defaultText: "the largest model's context size",
    schema: int(1, 1 << 24),
  },
  { name: 'max-messages', arg: 'n', description: 'most messages in one chat request', default: '256', schema: int(1, 1_000_000) },
  { name: 'max-stop', arg: 'n', description: 'most stop sequences in one request', default: '4', schema: int(0, 64) },
  {
    name: 'max-request-tokens',
    arg: 'n',
    description:
      'most tokens one request may generate over all its choices (n × max_tokens); without max_tokens each choice gets its share',
    defaultText: '4 × the context size',
    schema: int(1, 1 << 30),
    perModel: true,
  },
  {
    name: 'max-request-logprobs',
    arg: 'n',
    description: 'most log probabilities one request may return: choices × max_tokens × (1 + top_logprobs)',
    default: '65536',
    schema: int(1, 1 << 30),
    perModel: true,
  },
  {
    name: 'max-schema-bytes',
    arg: 'bytes',
    description: "most bytes of JSON schema in one request (response_format and every tool's parameters together)",
    default: '131072',
    schema: int(2, 1 << 30),
  },
  {
    name: 'max-enum-values',
    arg: 'n',
    description: "most enum values in one request's schemas, all enums together",
    default: '10000',
    schema: int(1, 1 << 24),
  },
  {
    name: 'max-schema-alternatives',
    arg: 'n',
    description: "most anyOf / oneOf branches and listed types in one request's schemas, all together",
    default: '256',
    schema: int(1, 1 << 20),
  },
  {
    name: 'max-grammar-rules',
    arg: 'n',
    description: "most rules in the grammar composed from one request's schemas and tools",
    default: '10000',
    schema: int(16, 1 << 24),
  },
  {
    name: 'grammar-cache',
    arg: 'n',
    description:
      'composed and compiled grammars kept per tokenizer and model worker, for requests that send the same schemas and tools again',
    default: '64',
    schema: int(0, 100_000),
  },
  {
    name: 'tokenizer-threads',
    arg: 'n',
    description: 'threads that tokenize prompts, render chat templates, compose grammars and answer /tokenize, off the main thread',
    default: '1',
    schema: int(1, 64),
  },
  {
    name: 'max-json-depth',
    arg: 'n',
    description: 'deepest nesting of arrays and objects in a request body, and in JSON strings it carries (tool call arguments)',
    default: '64',
    schema: int(8, 10_000),
  },
  {
    name: 'api-key',
    arg: 'key',
    description: 'require "Authorization: Bearer <key>" on the API (/health stays open)',
    defaultText: 'none: no auth',
    schema: nonEmpty,
    secret: true,
  },
  {
    name: 'api-key-file',
    arg: 'path',
    description: 'file of accepted API keys, one per line (blank lines and # comments ignored)',
    defaultText: 'none',
    schema: nonEmpty,
  },
  {
    name: 'metrics-auth',
    arg: '',
    description: 'require the API key on /metrics as well',
    default: 'false',
    schema: switchValue,
    boolean: true,
  },
  {
    name: 'cors-origin',
    arg: 'origin,...|*',
    description: 'allow browsers on these origins to call the API (CORS)',
    defaultText: 'off',
    schema: nonEmpty,
  },
  {
    name: 'allowed-hosts',
    arg: 'auto|*|host,.domain,...',
    description:
      'Host header values both ports answer (403 otherwise; a guard against DNS rebinding): auto = only localhost, *.localhost and IP addresses when bound to a loopback address, any host otherwise',
    default: 'auto',
    schema: hostList,
  },
  {
    name: 'gpu',
    arg: 'auto|cuda|vulkan|off',
    description: 'compute backend',
    default: 'auto',
    schema: z.enum(GPU_MODES, { error: `must be one of ${GPU_MODES.join(', ')}` }),
  },
  {
    name: 'gpu-layers',
    arg: 'n|auto|max',
    description: 'layers offloaded to the GPU',
    default: 'auto',
    schema: z.union([z.enum(['auto', 'max']), int(0, 100_000)], { error: 'must be auto, max or a non-negative integer' }),
    perModel: true,
  },
  {
    name: 'metrics-port',
    arg: 'n',
    description: 'dedicated Prometheus /metrics port (also served on the API port); 0 turns it off',
    default: '8000',
    schema: int(0, 65535),
  },
  { name: 'metrics-host', arg: 'addr', description: 'address of the metrics port', defaultText: 'the same as --host', schema: nonEmpty },
  {
    name: 'metrics-per-worker',
    arg: '',
    description: 'expose worker="i" series for worker metrics instead of merging them',
    default: 'false',
    schema: switchValue,
    boolean: true,
  },
  {
    name: 'metrics-timeout',
    arg: 'seconds',
    description: 'how long a scrape waits for each worker; a late worker contributes its last snapshot',
    default: '1',
    schema: positiveSeconds,
  },
  {
    name: 'latency-buckets',
    arg: 'seconds,...',
    description: 'upper bounds of the latency histograms (request, queue, first token, inter-token)',
    default: DEFAULT_TIME_BUCKETS.join(','),
    schema: bucketList,
  },
  {
    name: 'no-dashboard',
    arg: '',
    description: 'turn off the live dashboard and playground (GET /dashboard and /dashboard/data) and its 2 s metrics sampling',
    default: 'false',
    schema: switchValue,
    boolean: true,
  },
  {
    name: 'otlp-endpoint',
    arg: 'url',
    description:
      'send OpenTelemetry traces over OTLP/HTTP to this collector (traces go to <url>/v1/traces); OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_TRACES_ENDPOINT do the same',
    defaultText: 'off (unless an OTEL_EXPORTER_OTLP_* endpoint is set)',
    schema: z.url({ error: 'must be an http(s) URL' }).refine((u) => /^https?:\/\//i.test(u), 'must be an http(s) URL'),
  },
  {
    name: 'trace-content',
    arg: '',
    description: 'record prompt and completion text on the spans, each cut to 16384 characters (off: only sizes, counts and timings)',
    default: 'false',
    schema: switchValue,
    boolean: true,
  },
  {
    name: 'nvml-library',
    arg: 'path',
    description: 'NVML library for GPU metrics',
    default: 'libnvidia-ml.so.1',
    schema: nonEmpty,
  },
] as const satisfies readonly FlagSpec[];

export type FlagName = (typeof FLAGS)[number]['name'];

type Flag = (typeof FLAGS)[number];
/** What a flag's schema yields; a flag without a default (nor a switch, which defaults to off) may be absent. */
type FlagValue<F extends Flag> = F extends { default: string } | { boolean: true }
  ? z.output<F['schema']>
  : z.output<F['schema']> | undefined;
/** Every flag's parsed value, typed from the table's schemas: config.ts reads them without casts. */
export type FlagValues = { [F in Flag as F['name']]: FlagValue<F> };

export function envName(flag: string): string {
  return 'QWEN_' + flag.toUpperCase().replace(/-/g, '_');
}

export function defaultThreads(workers: number): number {
  return Math.max(1, Math.floor(os.availableParallelism() / workers));
}
