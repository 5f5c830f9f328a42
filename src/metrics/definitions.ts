/**
 * Every metric qwen-serve exposes, in one place: name, type, help, labels, and how it merges across
 * worker registries (`aggregator`). Counters and histograms sum; gauges say on purpose how they merge.
 * docs/metrics.md documents each one; a test checks the two agree.
 */
import type { Aggregator } from 'prom-client';

export type MetricKind = 'counter' | 'gauge' | 'histogram';
export type BucketKind = 'time' | 'tokens' | 'step';

export interface MetricDef {
  name: string;
  kind: MetricKind;
  help: string;
  labelNames: readonly string[];
  aggregator: Aggregator;
  buckets?: BucketKind;
}

const def = <const N extends string, const L extends readonly string[]>(
  name: N,
  kind: MetricKind,
  labelNames: L,
  help: string,
  extra: { aggregator?: Aggregator; buckets?: BucketKind } = {},
) => ({ name, kind, labelNames, help, aggregator: extra.aggregator ?? 'sum', buckets: extra.buckets }) satisfies MetricDef;

/** Owned by the main thread (HTTP, admission, GPU, process). */
export const MAIN = {
  // The tutorial's four metrics, names, types and labels unchanged so its PromQL keeps working.
  requests: def(
    'qwen_inference_request_total',
    'counter',
    ['method', 'endpoint'],
    'API requests (not /metrics, /health or the dashboard), counted when the response ends',
  ),
  duration: def(
    'qwen_inference_duration_seconds',
    'histogram',
    ['method', 'endpoint'],
    'API request time to the last byte, streams included',
    {
      buckets: 'time',
    },
  ),
  active: def('qwen_active_connections', 'gauge', [], 'API requests in flight'),
  gpuMemoryUsed: def('qwen_gpu_memory_usage_bytes', 'gauge', ['device', 'engine'], 'GPU memory in use, from NVML'),

  // Admission and outcomes.
  finished: def(
    'qwen_requests_finished_total',
    'counter',
    ['model', 'finish_reason'],
    'Generation requests that ended, by finish reason (stop, length, tool_calls, abort, error, sibling_failed)',
  ),
  features: def(
    'qwen_feature_requests_total',
    'counter',
    ['model', 'endpoint', 'feature'],
    'Generation requests that passed validation, by feature used (tools, tools_forced, json_object, json_schema, logprobs); a request counts once per feature',
  ),
  toolCalls: def('qwen_tool_calls_total', 'counter', ['model'], 'Tool calls returned to clients (each call of a parallel answer counts)'),
  rejected: def(
    'qwen_requests_rejected_total',
    'counter',
    ['model', 'reason'],
    'Generation requests refused before generating (queue_full, timeout, invalid, unauthorized)',
  ),
  queueTime: def('qwen_request_queue_seconds', 'histogram', ['model'], 'Time from admission until a sequence started the request', {
    buckets: 'time',
  }),
  prepareTime: def(
    'qwen_request_prepare_seconds',
    'histogram',
    ['model', 'op', 'lane'],
    'Time a request spent in the tokenizer threads, waiting included (op: prompts = tokenizing, chat template and grammars; tokenize; detokenize; lane: light, or heavy for bodies of 64 KiB and more)',
    { buckets: 'time' },
  ),
  grammarCache: def(
    'qwen_grammar_cache_requests_total',
    'counter',
    ['model', 'result'],
    'Requests with a grammar (tools, response_format), by whether it came from the cache of composed grammars (hit) or was composed (miss)',
  ),
  running: def('qwen_requests_running', 'gauge', ['model'], 'Requests holding a sequence'),
  waiting: def('qwen_requests_waiting', 'gauge', ['model'], 'Requests queued for a free sequence'),
  readySequences: def('qwen_sequences_capacity', 'gauge', ['model'], 'Sequences of the ready workers (ready workers x --sequences)'),
  workersReady: def('qwen_workers_ready', 'gauge', ['model'], 'Model workers that have loaded the model'),
  // Several models per server (--model ID=SOURCE): which are resident, and on-demand loads and unloads.
  resident: def(
    'qwen_model_resident',
    'gauge',
    ['model'],
    'Whether the model is resident (1: its engines are started, loading or ready) or unloaded (0, an on-demand model)',
  ),
  loads: def('qwen_model_loads_total', 'counter', ['model'], 'Times the model was loaded: at start, and each on-demand load'),
  unloads: def(
    'qwen_model_unloads_total',
    'counter',
    ['model', 'reason'],
    'Times an on-demand model was unloaded (idle: unused for its --keep-alive; evicted: to make room under --max-resident-models)',
  ),
  clientErrors: def(
    'qwen_http_client_errors_total',
    'counter',
    ['code'],
    "Connections whose request Node's HTTP parser refused (bad_request, headers_too_large, client_timeout), answered before any route ran",
  ),
  collectTimeouts: def(
    'qwen_metrics_collect_timeouts_total',
    'counter',
    [],
    'Scrapes in which a worker missed the collection timeout (its last snapshot was used)',
  ),
  collectFailures: def(
    'qwen_metrics_collect_errors_total',
    'counter',
    [],
    'Scrapes in which an engine process could not collect its metrics (it logs why; its last snapshot was used)',
  ),

  // GPU (NVML) beyond the tutorial's gauge.
  gpuMemoryTotal: def('qwen_gpu_memory_total_bytes', 'gauge', ['device', 'engine'], 'GPU memory in total, from NVML'),
  gpuUtilization: def(
    'qwen_gpu_utilization_ratio',
    'gauge',
    ['device', 'engine'],
    'GPU busy ratio over the last sample period (0-1), from NVML',
  ),
  gpuReadErrors: def(
    'qwen_gpu_read_errors_total',
    'counter',
    ['call'],
    'NVML reads that failed, by the NVML function that failed (or read); a value it could not read is left out of the GPU series',
  ),
  gpuInfo: def('qwen_gpu_info', 'gauge', ['device', 'engine', 'name', 'uuid'], 'GPU identity; always 1'),

  // Engine processes (--gpus / --engines); absent when the pool runs in the server's own process.
  engineUp: def(
    'qwen_engine_up',
    'gauge',
    ['model', 'engine', 'device'],
    'Whether the engine process runs with at least one worker ready (1) or not (0)',
  ),
  engineRestarts: def(
    'qwen_engine_restarts_total',
    'counter',
    ['model', 'engine', 'device'],
    'Engine processes that exited unexpectedly and were restarted',
  ),

  buildInfo: def('qwen_build_info', 'gauge', ['version', 'node', 'llama_cpp'], 'Build identity; always 1'),
} as const;

/**
 * Owned by each engine (the pool's host: this process, or an engine process, whose series then carry
 * `engine` and `device` labels like every series that comes from it).
 */
export const ENGINE = {
  // The front adds the model's label to everything an engine reports (metrics-collector.ts).
  workerRestarts: def('qwen_worker_restarts_total', 'counter', ['model'], 'Model workers that died and were replaced'),
} as const;

/** Owned by each model worker; merged across workers at scrape time. */
export const WORKER = {
  promptTokens: def('qwen_prompt_tokens_total', 'counter', ['model'], 'Prompt tokens of requests that started generating'),
  generationTokens: def('qwen_generation_tokens_total', 'counter', ['model'], 'Generated tokens, aborted requests included'),
  ttft: def('qwen_time_to_first_token_seconds', 'histogram', ['model'], 'Time from admission to the first generated token', {
    buckets: 'time',
  }),
  itl: def('qwen_inter_token_latency_seconds', 'histogram', ['model'], 'Time between consecutive generated tokens of a request', {
    buckets: 'time',
  }),
  promptTokensPerRequest: def('qwen_request_prompt_tokens', 'histogram', ['model'], 'Prompt tokens per request', { buckets: 'tokens' }),
  generationTokensPerRequest: def('qwen_request_generation_tokens', 'histogram', ['model'], 'Generated tokens per request', {
    buckets: 'tokens',
  }),
  // Batching: one observation per llama_decode call of a worker's batch loop.
  stepTokens: def(
    'qwen_decode_step_tokens',
    'histogram',
    ['model'],
    'Tokens per decode step (one sampled token per generating sequence, the draft tokens verified with it, plus prompt chunks)',
    { buckets: 'step' },
  ),
  stepSequences: def('qwen_decode_step_sequences', 'histogram', ['model'], 'Sequences per decode step', { buckets: 'step' }),
  stepTime: def('qwen_decode_step_seconds', 'histogram', ['model'], 'Time of one decode step: batch assembly, llama_decode and sampling', {
    buckets: 'time',
  }),
  // Speculative decoding (n-gram drafts verified in the batch loop), named after vLLM's and llama-server's:
  // acceptance rate = accepted ÷ draft tokens; the draft tokens are also in qwen_decode_step_tokens.
  specDrafts: def(
    'qwen_spec_decode_drafts_total',
    'counter',
    ['model'],
    'Drafts verified: one per sequence per decode step that checked a draft',
  ),
  specDraftTokens: def(
    'qwen_spec_decode_draft_tokens_total',
    'counter',
    ['model'],
    "Draft tokens verified: decoded in a step with their sequence's last sampled token and checked against the model's own samples",
  ),
  specAcceptedTokens: def(
    'qwen_spec_decode_accepted_tokens_total',
    'counter',
    ['model'],
    "Draft tokens accepted: equal to the model's own sample at their position, so kept (never more than the draft tokens)",
  ),
  loopFailures: def(
    'qwen_batch_loop_failures_total',
    'counter',
    ['model', 'kind'],
    "Failures in a worker's batch loop, by kind (edit: a KV-cache edit for one request; step: a decode step that could not be assembled or decoded; loop: the loop itself); the requests each one failed ended with error, the others went on",
  ),
  kvUsage: def('qwen_kv_cache_usage_ratio', 'gauge', ['model'], 'Share of the KV cache holding tokens (0-1), averaged over workers', {
    aggregator: 'average',
  }),
  loadSeconds: def('qwen_model_load_seconds', 'gauge', ['model'], 'Time the slowest worker took to load the model', { aggregator: 'max' }),
} as const;

/**
 * The labels every series from an engine process carries, as the metrics take them: a plain record (a type,
 * not an interface, so it is assignable to prom-client's label maps). The engines fill it in.
 */
export type EngineLabels = { engine: string; device: string };

/** The `kind` label of qwen_batch_loop_failures_total (workers/batch-loop.ts LoopFault). */
export const LOOP_FAILURE_KINDS = ['edit', 'step', 'loop'] as const;
export type LoopFailureKind = (typeof LOOP_FAILURE_KINDS)[number];

/** Jobs of the tokenizer workers (the `op` label of qwen_request_prepare_seconds). */
export const PREPARE_OPS = ['prompts', 'tokenize', 'detokenize'] as const;
export type PrepareOp = (typeof PREPARE_OPS)[number];
/** The tokenizer threads' lanes (the `lane` label of qwen_request_prepare_seconds). */
export const PREPARE_LANES = ['light', 'heavy'] as const;
export type PrepareLane = (typeof PREPARE_LANES)[number];

/** The endpoints that run the model: they count in qwen_requests_* and in the dashboard's request latency. */
export const GENERATION_ENDPOINTS: ReadonlySet<string> = new Set([
  '/v1/completions',
  '/v1/chat/completions',
  '/v1/responses',
  '/v1/messages',
  '/v1/embeddings',
]);
/**
 * Every value an `endpoint` label takes: the route template a request matched (src/http/route-table.ts
 * names each route's), or `other` for any path that matched none. No label carries a raw path.
 */
export const API_ENDPOINTS = [
  '/v1/completions',
  '/v1/chat/completions',
  '/v1/responses',
  '/v1/messages',
  '/v1/messages/count_tokens',
  '/v1/embeddings',
  '/v1/models',
  '/v1/models/{id}',
  '/tokenize',
  '/detokenize',
] as const;
export type ApiEndpoint = (typeof API_ENDPOINTS)[number];
export type EndpointLabel = ApiEndpoint | 'other';

/**
 * The `finish_reason` values of qwen_requests_finished_total: the API's finish reasons, `error` (the choice
 * failed), and `sibling_failed` (the server stopped the choice because another choice of its request failed).
 */
export const FINISH_REASONS = ['stop', 'length', 'tool_calls', 'abort', 'error', 'sibling_failed'] as const;
/**
 * Request features counted by qwen_feature_requests_total: tools (tool_choice auto), tools_forced
 * (required or a named function), json_object / json_schema (response_format), logprobs.
 */
export const FEATURES = ['tools', 'tools_forced', 'json_object', 'json_schema', 'logprobs'] as const;
export type Feature = (typeof FEATURES)[number];
export type FinishOutcome = (typeof FINISH_REASONS)[number];
/** The codes of qwen_http_client_errors_total: what Node's HTTP parser refused (src/http/client-errors.ts). */
export const CLIENT_ERROR_CODES = ['bad_request', 'headers_too_large', 'client_timeout'] as const;
export const REJECT_REASONS = ['queue_full', 'timeout', 'invalid', 'unauthorized'] as const;
/** The `reason` label of qwen_model_unloads_total. */
export const UNLOAD_REASONS = ['idle', 'evicted'] as const;
export type UnloadReason = (typeof UNLOAD_REASONS)[number];
export type RejectReason = (typeof REJECT_REASONS)[number];

/** Latency buckets start at 1 ms: a 0.5B model produces tokens in a few ms on a GPU. */
export const DEFAULT_TIME_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Cumulative totals of the decode-step histograms (WORKER.step*): what the dashboard and the benchmark read. */
export interface StepTotals {
  /** Decode steps (the histograms' _count). */
  steps: number;
  tokens: number;
  sequences: number;
  seconds: number;
}

/** Tokens or sequences in one decode step: powers of two up to a large prompt batch. */
export const STEP_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048];
export const TOKEN_BUCKETS = [1, 4, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768];

export const ALL_METRICS: readonly MetricDef[] = [...Object.values(MAIN), ...Object.values(ENGINE), ...Object.values(WORKER)];
