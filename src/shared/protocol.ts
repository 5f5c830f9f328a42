/**
 * The message protocol between the main thread and the model workers: plain, structured-cloneable
 * types only. The worker imports this file and nothing from the HTTP side.
 */
import type { MessagePort } from 'node:worker_threads';

/** BroadcastChannel name for worker → main control messages (readiness, load failures). */
export const CONTROL_CHANNEL = 'qwen-serve:control';

/** What every worker receives as Piscina workerData. */
export interface WorkerInit {
  modelPath: string;
  threads: number;
  sequences: number;
  contextSize: number;
  batchSize: number;
  gpu: 'auto' | 'cuda' | 'vulkan' | 'off';
  gpuLayers: number | 'auto' | 'max';
}

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export type GenerateInput = { kind: 'text'; prompt: string } | { kind: 'chat'; messages: ChatMessage[] };

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
}

/** The task handed to Piscina's run(); `port` is transferred. */
export interface GenerateTask {
  requestId: string;
  input: GenerateInput;
  sampling: SamplingParams;
  port: MessagePort;
}

export type FinishReason = 'stop' | 'length' | 'abort';

export type CancelReason = 'client' | 'timeout' | 'shutdown';

/** Serializable error (status + OpenAI type + stable code). */
export interface ErrorPayload {
  status: number;
  type: 'invalid_request_error' | 'server_error';
  code: string;
  message: string;
  param: string | null;
}

/** Worker → main, on the task's port. A task ends with exactly one `done` or `error`. */
export type WorkerMessage =
  | { type: 'started'; promptTokens: number }
  | { type: 'text'; text: string; tokens: number }
  | { type: 'done'; finishReason: FinishReason; promptTokens: number; completionTokens: number }
  | { type: 'error'; error: ErrorPayload; promptTokens: number; completionTokens: number };

/** Main → worker, on the task's port. */
export type MainMessage = { type: 'cancel'; reason: CancelReason };

/** Worker → main, on CONTROL_CHANNEL. */
export type ControlMessage =
  | { type: 'ready'; workerId: number; loadSeconds: number }
  | { type: 'load_failed'; workerId: number; message: string };
