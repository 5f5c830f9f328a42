/**
 * The message protocol between the main thread and the model workers: plain, structured-cloneable
 * types only. From src/ the workers import this file and the rest of src/shared, the error table
 * (src/errors.ts), the tokenizer and their own metrics registry (src/metrics/worker-metrics.ts); never
 * the HTTP side, the dispatcher or the engines.
 */
import type { MessagePort } from 'node:worker_threads';
import type { ErrorPayload } from '../errors.js';

/**
 * BroadcastChannel for main → workers requests (metrics collection). Workers answer on their
 * parentPort, which Piscina re-emits as the pool's 'message' event: never `pool.threads[i].postMessage`,
 * which Piscina takes for its start-up message and which kills the worker.
 */
const WORKERS_CHANNEL = 'qwen-serve:workers';

/** Each pool's own channel: a BroadcastChannel reaches every thread of the process that opened the same name. */
export function workersChannel(modelId: string): string {
  return `${WORKERS_CHANNEL}:${modelId}`;
}

/**
 * `--speculative`: how draft tokens are proposed ('off': one token per sequence per step; 'ngram': lookup in the
 * prompt and answer; 'draft': a small model with the same vocabulary, --draft-model).
 */
export const SPECULATIVE_MODES = ['off', 'ngram', 'draft'] as const;

/**
 * `--draft-policy`: 'adaptive' drafts the length that promises the most tokens per second (none when drafting does
 * not pay); 'always' verifies every draft on offer, up to --draft-max.
 */
export const DRAFT_POLICIES = ['adaptive', 'always'] as const;
export type DraftPolicy = (typeof DRAFT_POLICIES)[number];

/** Speculative decoding in a worker's batch loop (workers/batch-loop.ts). */
interface SpeculationSettings {
  /** Fewest and most draft tokens a sequence verifies in one step (--draft-min, --draft-max). */
  draftMin: number;
  draftMax: number;
  policy: DraftPolicy;
  /** --speculative draft: the draft model's GGUF file (--draft-model, resolved before the workers start); absent: n-gram lookup. */
  draftModelPath?: string;
}

/** What every worker receives as Piscina workerData. */
/** `--gpu`: the compute backends node-llama-cpp can use ('off' = CPU only). */
export const GPU_MODES = ['auto', 'cuda', 'vulkan', 'off'] as const;
export type GpuMode = (typeof GPU_MODES)[number];
/** `--gpu-layers`: a count, or node-llama-cpp's own choice. */
export type GpuLayers = number | 'auto' | 'max';

export interface WorkerInit {
  modelPath: string;
  /** The `model` label of the worker's metrics. */
  modelId: string;
  /** The BroadcastChannel the pool's metrics requests come on (workersChannel(modelId)). */
  channel: string;
  /** Upper bounds (seconds) of the latency histograms. */
  timeBuckets: number[];
  /** Test-only fault injection (see workers/faults.ts); false in production. */
  faults: boolean;
  threads: number;
  sequences: number;
  contextSize: number;
  batchSize: number;
  gpu: GpuMode;
  gpuLayers: GpuLayers;
  /** Compiled grammars each worker keeps (--grammar-cache). */
  grammarCacheSize: number;
  /** Speculative decoding (--speculative ngram or draft); absent when off. */
  speculation?: SpeculationSettings;
}

type ChatRole = 'system' | 'user' | 'assistant' | 'tool';

/** A tool call the assistant made earlier in the conversation; `arguments` is the parsed JSON object. */
interface HistoryToolCall {
  id: string;
  name: string;
  arguments: unknown;
}

export interface ChatMessage {
  role: ChatRole;
  content: string;
  /** Assistant messages: the calls it made. */
  toolCalls?: HistoryToolCall[];
  /** Tool messages: the call this is the result of. */
  toolCallId?: string;
}

/**
 * What to generate from: text, token ids (completions), or chat messages. `suffix` (completions): fill in
 * the middle between the prompt and it, with the model's FIM tokens. `param`: the request field the text
 * or tokens came from (`input`, `input.2`), for the worker's errors about it.
 */
export type GenerateInput =
  | { kind: 'text'; prompt: string; suffix?: string; param?: string }
  | { kind: 'tokens'; tokens: number[]; suffix?: string; param?: string }
  | { kind: 'chat'; messages: ChatMessage[] };

/**
 * A JSON schema in the subset the grammar enforces (node-llama-cpp's GbnfJsonSchema), produced on the
 * main thread by src/structured/json-schema.ts from what the client sent.
 */
export type GrammarSchema = Record<string, unknown>;

export interface ToolFunction {
  name: string;
  description?: string;
  /** What the model is shown (the client's schema as sent). */
  parameters: Record<string, unknown>;
  /** What the grammar enforces on the arguments. */
  grammarSchema: GrammarSchema;
}

/** `tool_choice`: the model decides, must call some tool, or must call this one. */
export type ToolChoice = { type: 'auto' } | { type: 'required' } | { type: 'function'; name: string };

/** What shapes the output beyond plain text; absent fields leave it free. */
export interface OutputConstraints {
  /** The answer's text must be one JSON value of this schema (`response_format`). */
  json?: GrammarSchema;
  /** Tools the model may call (chat only); absent with tool_choice "none". */
  tools?: { functions: ToolFunction[]; choice: ToolChoice; parallel: boolean };
  /** Report log probabilities, with this many alternatives per token (0-20). */
  logprobs?: { top: number };
}

/** The grammars a model worker compiles (GBNF text), composed in the tokenizer worker. */
export interface Shaping {
  /** Applied from the first token. */
  grammar?: string;
  /** For a free answer with tools: the grammar of the rest of a call, once the model wrote its trigger. */
  afterTrigger?: string;
  /** The answer is calls from its first token (tool_choice required or a named function). */
  forcedCalls: boolean;
  /** Calls are parsed out of the answer (a request with tools). */
  tools: boolean;
  /** The answer is one JSON value (response_format): stop strings are not applied to it. */
  json: boolean;
}

export interface SamplingParams {
  /** 0 = greedy. */
  temperature: number;
  topP: number;
  /** 0 = disabled. */
  topK: number;
  seed?: number;
  presencePenalty: number;
  frequencyPenalty: number;
  /** undefined = until the context is full. */
  maxTokens?: number;
  /** Name of the field that set maxTokens, for error messages (max_tokens / max_completion_tokens). */
  maxTokensParam: string;
  stop: string[];
  ignoreEos: boolean;
  /** The request allows speculative decoding (it may turn it off: the output is the same either way). */
  speculative: boolean;
  /** [token id, bias added to its logit] (OpenAI logit_bias; -100 bans a token, +100 all but forces it). */
  logitBias: [number, number][];
}

/** What every model task carries, whatever it asks for. */
interface TaskBase {
  /** The API request's id (x-request-id), shared by its choices: in the log lines about the task. */
  requestId: string;
  /** The request is traced and sampled: the worker measures the task's times (TaskTimings) for its spans. */
  traced?: boolean;
  /** The prompt's tokens (from the tokenizer workers). */
  prompt: number[];
  /** The request field that holds the prompt (`messages`, `prompt`, `input`, …), for errors. */
  promptParam: string;
  /** Test-only fault injection (QWEN_TEST_FAULTS=1): the marker the tokenizer worker found in the prompt. */
  fault?: 'throw' | 'crash';
}

/** Generate an answer to the prompt (text-generation models). */
export interface GenerateSpec extends TaskBase {
  kind: 'generate';
  /** `maxTokens` is decided by the front: the prompt fits the context with it (checked before admission). */
  sampling: SamplingParams & { maxTokens: number };
  /** Grammars and how to read the answer; absent for free text. */
  shaping?: Shaping;
  /** Report log probabilities, with this many alternatives per token (0-20). */
  logprobs?: { top: number };
}

/** One embedding vector of the prompt (embedding models only): nothing is sampled. */
export interface EmbedSpec extends TaskBase {
  kind: 'embed';
}

/** What the front decides for a task; the worker switches on `kind`. */
export type TaskSpec = GenerateSpec | EmbedSpec;

/**
 * The task handed to Piscina's run(): a TaskSpec, its admission time, and its `port` (transferred). The
 * prompt arrives tokenized and the grammars composed (by the tokenizer workers, workers/prepare-worker.ts):
 * nothing a model worker does for a task grows with the client's text, so its decode loop never waits for one.
 */
export type ModelTask = TaskSpec & {
  /** Admission time as epoch milliseconds (performance.timeOrigin + now()), comparable across threads. */
  admittedAtMs: number;
  port: MessagePort;
};

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'abort';

/**
 * Why a task is cancelled: the client went away, --request-timeout ran out, the server is shutting down, or
 * another choice of the same request failed (the request has failed; this choice's answer is of no use).
 */
export type CancelReason = 'client' | 'timeout' | 'shutdown' | 'sibling_failed';

/** One generated token's log probability, and the most likely alternatives (OpenAI's logprobs entry). */
export interface TokenLogprob {
  token: string;
  /** The token's UTF-8 bytes (a token can hold part of a character). */
  bytes: number[];
  logprob: number;
  top: { token: string; bytes: number[]; logprob: number }[];
}

/**
 * A piece of a tool call: the first piece of call `index` carries its name, later ones more of the
 * arguments' JSON text (concatenated, they are the whole arguments string).
 */
export interface ToolCallDelta {
  index: number;
  name?: string;
  arguments: string;
}

/** Decode steps a traced task reports at most (TaskTimings.steps): a long answer reports every few tokens. */
export const MAX_TRACED_STEPS = 128;

/**
 * What a worker measured of a traced task, as epoch milliseconds (nowMs: the same clock in every thread and
 * engine process), for the spans the main thread builds: the clock of the thread doing the work, not the time a
 * message took to arrive.
 */
export interface TaskTimings {
  /** The worker thread's id (in its engine's process). */
  worker: number;
  /** The worker took the task and gave it a sequence: the end of its wait. */
  startedMs: number;
  /** Compiling the request's grammars (tools, response_format) into the sampler's: [start, end]. */
  grammar?: [number, number];
  /** The prompt was evaluated: the first token was sampled (or the embedding computed). */
  firstMs?: number;
  /** The model began its first tool call. */
  toolCallMs?: number;
  /** The last token was sampled. */
  lastMs?: number;
  /** `steps[j]` is when token 1 + (j + 1) × stepStride was sampled (at most MAX_TRACED_STEPS entries). */
  steps: number[];
  stepStride: number;
  endMs: number;
}

/** Worker → main, on the task's port. A task ends with exactly one `done` or `error`. */
export type WorkerMessage =
  | { type: 'started'; promptTokens: number }
  /** Answer text; `tokens` generated since the last message; `logprobs` of those tokens when asked for. */
  | { type: 'text'; text: string; tokens: number; logprobs?: TokenLogprob[] }
  | { type: 'tool_call'; delta: ToolCallDelta; tokens: number; logprobs?: TokenLogprob[] }
  /** The input's embedding (an `embed` task), L2-normalized. */
  | { type: 'embedding'; vector: number[] }
  /** `cachedTokens`: prompt tokens found in the KV cache (or copied from another sequence), not evaluated again. */
  | {
      type: 'done';
      finishReason: FinishReason;
      promptTokens: number;
      completionTokens: number;
      cachedTokens: number;
      /** The stop string that ended the answer, if one did (Anthropic reports it). */
      stopSequence?: string;
      /** A traced task's times. */
      timings?: TaskTimings;
    }
  | { type: 'error'; error: ErrorPayload; promptTokens: number; completionTokens: number; timings?: TaskTimings };

/** Main → worker, on the task's port. */
export type MainMessage = { type: 'cancel'; reason: CancelReason };

/**
 * How a worker samples top_logprobs: with the addon patched at install (scripts/addon-patch), only the k most
 * likely candidates; with node-llama-cpp's stock addon, a sort and copy of the whole vocabulary per token.
 */
export type TopLogprobsPath = 'patched-top-k' | 'stock-full-sort';

/** Worker → main, on the worker's parentPort. */
export type ControlMessage =
  /** `topLogprobs`: for a text-generation model only. */
  | { type: 'ready'; workerId: number; loadSeconds: number; llamaCpp: string; topLogprobs?: TopLogprobsPath }
  | { type: 'load_failed'; workerId: number; message: string }
  /** Reply to a CollectRequest: the worker registry's getMetricsAsJSON(). */
  | { type: 'metrics'; workerId: number; id: number; metrics: unknown[] }
  | LlamaLogMessage;

/**
 * Worker → main, on the worker's parentPort (model and tokenizer workers): one llama.cpp log line, cut to
 * size and rate-limited in the worker (workers/llama-log.ts), for the main thread's logger.
 */
export interface LlamaLogMessage {
  type: 'llama_log';
  level: 'error' | 'warn' | 'info' | 'debug';
  message: string;
  /** Characters cut from the end of the line. */
  truncated?: number;
  /** Lines dropped before this one by the rate limit. */
  dropped?: number;
}

/** Main → workers, on the pool's workersChannel(). */
export type WorkerRequest = { type: 'collect'; id: number };

/** Epoch milliseconds with sub-millisecond resolution, the same clock in every thread. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}
