/**
 * Main thread ↔ tokenizer workers (workers/prepare-worker.ts): the jobs whose cost grows with what the
 * client sent — tokenizing prompts, rendering chat templates, composing grammars, /tokenize — run there,
 * never on the main thread (which must keep serving every other client) and never in a model worker's
 * decode loop. Plain, structured-cloneable types only.
 */
import type { ErrorPayload } from '../errors.js';
import type { GenerateInput, GpuMode, GrammarSchema, Shaping, ToolChoice, ToolFunction } from './protocol.js';

/**
 * Most characters of a prompt or completion a trace records (--trace-content): the span is built and exported on
 * the main thread, so what it copies is bounded whatever the client sent.
 */
export const TRACE_CONTENT_CHARS = 16_384;

/** `text`, cut to TRACE_CONTENT_CHARS with a note of how much was left out. */
export function traceContent(text: string): string {
  if (text.length <= TRACE_CONTENT_CHARS) return text;
  return `${text.slice(0, TRACE_CONTENT_CHARS)}… [${text.length - TRACE_CONTENT_CHARS} more characters]`;
}

/** Piscina workerData of a tokenizer worker. */
export interface PrepareInit {
  modelPath: string;
  /** The same backend build as the process's model workers (node-llama-cpp's binary is process-wide). */
  gpu: GpuMode;
  /** Test-only fault injection (see workers/faults.ts): look for the marker in prompts. */
  faults: boolean;
  logLevel: string;
  /** Compiled grammars kept for requests that send the same schemas again (agents send their tools every turn). */
  grammarCacheSize: number;
  /** Most rules in one request's composed grammar (--max-grammar-rules). */
  maxGrammarRules: number;
  /** Tokens per sequence: a prompt whose text alone must exceed it is refused without being tokenized. */
  contextSize: number;
}

/** What the answer must look like, as a grammar is composed from it. */
export interface ShapingRequest {
  /** response_format's schema (already checked and converted on the main thread). */
  json?: GrammarSchema;
  tools?: { functions: ToolFunction[]; choice: ToolChoice; parallel: boolean };
  /** Where the schemas came from, for errors (`tools`, `response_format`, `text.format`, …). */
  param: string;
}

export type PrepareJob =
  /** The prompts of a generation or embedding request, and its grammars. */
  | {
      op: 'prompts';
      inputs: GenerateInput[];
      /** Tools shown to the model by the chat template (chat inputs). */
      tools?: ToolFunction[];
      shaping?: ShapingRequest;
      /** Token-id inputs come back as text too (completions `echo`). */
      echo?: boolean;
      /** Each prompt comes back as the text the model reads, cut to TRACE_CONTENT_CHARS (--trace-content). */
      content?: boolean;
      /** Request field of the prompts, for errors (`prompt`, `messages`, `input`). */
      param: string;
      /** Refuse prompts whose text cannot fit the context before tokenizing them (generation and embeddings). */
      fitContext?: boolean;
    }
  /** POST /tokenize: the response body, built here (its size grows with the input). */
  | {
      op: 'tokenize';
      /** Text (special-token text parsed into ids when `special`), or chat messages rendered as a chat completion would be. */
      source: { text: string; special: boolean } | { input: GenerateInput };
      pieces: boolean;
      maxModelLen: number;
    }
  | { op: 'detokenize'; tokens: number[]; param: string };

export interface PreparedPrompts {
  prompts: { tokens: number[]; echo?: string }[];
  /** With `content`: each prompt's text (the chat template applied), cut to TRACE_CONTENT_CHARS. */
  content?: string[];
  shaping?: Shaping;
  /** Test-only: the fault marker found in the prompts. */
  fault?: 'throw' | 'crash';
  /** Whether the grammars came from the cache. */
  grammarCached?: boolean;
}

export type PrepareResult =
  | { ok: true; op: 'prompts'; value: PreparedPrompts }
  | { ok: true; op: 'tokenize'; body: string }
  | { ok: true; op: 'detokenize'; text: string }
  /** A client error (a 4xx for the request), or a fault of ours (5xx, with what to log in `detail`). */
  | { ok: false; error: ErrorPayload; detail?: string };

/** Worker → main, on its parentPort: loaded, or not. */
/** `embedding`: the GGUF declares a pooling type (an embedding model, served on /v1/embeddings only). */
export type PrepareControl = { type: 'prepare_ready'; embedding: boolean } | { type: 'prepare_failed'; message: string };
