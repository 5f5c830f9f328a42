/**
 * Piscina worker entry. Loads the model once (top-level await: Piscina sends no task before the
 * module has loaded), announces readiness on its parentPort, then serves up to S tasks at once, each
 * on its own sequence. Tokens go back on the task's MessagePort; `cancel` arrives on it too — the
 * worker is never terminated while generating (that aborts the whole process).
 */
import { BroadcastChannel, parentPort, threadId } from 'node:worker_threads';
import type { Token } from 'node-llama-cpp';
import { workerData } from 'piscina';
import { ApiError, InternalError, InvalidRequestError } from '../src/errors.js';
import { WorkerMetrics } from '../src/metrics/worker-metrics.js';
import {
  type ControlMessage,
  type EmbedSpec,
  type GenerateSpec,
  type MainMessage,
  type ModelTask,
  type WorkerInit,
  type WorkerMessage,
  type WorkerRequest,
} from '../src/shared/protocol.js';
import { embed, type LoadedEmbedder } from './embed.js';
import { loadModel, type LoadedModel } from './model.js';
import { crashWorker, injectFault, InjectedCrash } from './faults.js';
import { generate } from './generate.js';
import { TaskTimer } from './task-timer.js';

const init = workerData as WorkerInit;
const announce = (msg: ControlMessage) => parentPort!.postMessage(msg);

let loaded: LoadedModel | LoadedEmbedder | undefined;
let loadError: string | undefined;
const metrics = new WorkerMetrics({
  modelId: init.modelId,
  timeBuckets: init.timeBuckets,
  kvUsage: () => (loaded?.kind === 'generate' ? loaded.kvUsage() : 0),
});

// Metrics requests from the main thread; the reply goes back on parentPort.
const requests = new BroadcastChannel(init.channel);
requests.unref();
requests.onmessage = (event) => {
  const msg = (event as { data: WorkerRequest }).data;
  if (msg.type === 'collect') {
    metrics.snapshot().then(
      (json) => announce({ type: 'metrics', workerId: threadId, id: msg.id, metrics: json }),
      // No answer: the collector waits its timeout, counts it, and uses this worker's last snapshot.
      () => {},
    );
  }
};

const started = process.hrtime.bigint();
try {
  const model = await loadModel(init, { onStep: (stats) => metrics.step(stats), onFault: (fault) => metrics.loopFailed(fault.kind) });
  loaded = model;
  const loadSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  metrics.setLoadSeconds(loadSeconds);
  announce({
    type: 'ready',
    workerId: threadId,
    loadSeconds,
    llamaCpp: model.llamaCppRelease,
    ...(model.kind === 'generate' && { topLogprobs: model.topLogprobs }),
  });
} catch (err) {
  // Report instead of throwing: a module that throws makes Piscina respawn it in a loop.
  loadError = err instanceof Error ? err.message : String(err);
  announce({ type: 'load_failed', workerId: threadId, message: loadError });
}

/** An embedding model serves only embeddings, a generation model only generation: a 400 naming the model's kind. */
function wrongModel(model: 'generate' | 'embed'): InvalidRequestError {
  if (model === 'embed') {
    return new InvalidRequestError(
      `The model '${init.modelId}' is an embedding model (its GGUF declares a pooling type): use /v1/embeddings.`,
      'model',
      'model_not_generative',
    );
  }
  return new InvalidRequestError(
    `The model '${init.modelId}' is a text-generation model, not an embedding model: /v1/embeddings needs a GGUF that declares a pooling type (an embedding model such as gte-Qwen2).`,
    'model',
    'model_not_embedding',
  );
}

/** What the client gets for a failure: a client error thrown as one (ApiError) as it is, anything else a 500. */
function asApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new InternalError(`Generation failed: ${message}`, 'generation_failed');
}

/** What a task has reported so far, for its final message. */
interface Progress {
  promptTokens: number;
  completionTokens: number;
  /** Whether it started (the metrics then count its end). */
  generating: boolean;
}

type Emit = (msg: WorkerMessage) => void;

export default async function run(task: ModelTask): Promise<void> {
  const { port } = task;
  let cancelled = false;
  port.on('message', (msg: MainMessage) => {
    if (msg.type === 'cancel') cancelled = true;
  });
  const timer = task.traced ? new TaskTimer() : undefined;
  const post: Emit = (msg) => port.postMessage(msg);
  // A traced task's final message carries its times; the first tool-call piece marks when the call began.
  const emit: Emit = !timer
    ? post
    : (msg) => {
        if (msg.type === 'tool_call') timer.toolCall();
        post(msg.type === 'done' || msg.type === 'error' ? { ...msg, timings: timer.end() } : msg);
      };
  const observer = metrics.request(task.admittedAtMs);
  const progress: Progress = { promptTokens: 0, completionTokens: 0, generating: false };
  try {
    if (!loaded) throw new Error(`model failed to load: ${loadError}`);
    switch (task.kind) {
      case 'embed':
        if (loaded.kind !== 'embed') throw wrongModel(loaded.kind);
        await runEmbed(loaded, task, emit, observer, progress, timer);
        break;
      case 'generate':
        if (loaded.kind !== 'generate') throw wrongModel(loaded.kind);
        await runGenerate(loaded, task, { emit, observer, progress, timer, cancelled: () => cancelled });
        break;
    }
  } catch (err) {
    if (err instanceof InjectedCrash) await crashWorker();
    emit({
      type: 'error',
      error: asApiError(err).toPayload(),
      promptTokens: progress.promptTokens,
      completionTokens: progress.completionTokens,
    });
  } finally {
    if (progress.generating) observer.finished(progress.completionTokens);
    // The main thread closes the channel once it has read done/error; closing here could drop them.
    port.removeAllListeners('message');
  }
}

type Observer = ReturnType<WorkerMetrics['request']>;

async function runEmbed(
  loaded: LoadedEmbedder,
  task: EmbedSpec,
  emit: Emit,
  observer: Observer,
  progress: Progress,
  timer: TaskTimer | undefined,
): Promise<void> {
  const { vector, tokens } = await embed(loaded, task.prompt, task.promptParam);
  timer?.token(1);
  progress.promptTokens = tokens;
  observer.started(tokens);
  progress.generating = true;
  emit({ type: 'started', promptTokens: tokens });
  emit({ type: 'embedding', vector });
  emit({ type: 'done', finishReason: 'stop', promptTokens: tokens, completionTokens: 0, cachedTokens: 0 });
}

/** What runGenerate reports to: the task's port, metrics, final-message bookkeeping and (traced) timer. */
interface TaskReport {
  emit: Emit;
  observer: Observer;
  progress: Progress;
  timer: TaskTimer | undefined;
  cancelled: () => boolean;
}

async function runGenerate(loaded: LoadedModel, task: GenerateSpec, report: TaskReport): Promise<void> {
  const { emit, observer, progress, timer, cancelled } = report;
  // Decided by the tokenizer worker, and only when fault injection is on: nothing to look for here.
  const fault = init.faults ? task.fault : undefined;
  const prompt = task.prompt as Token[];
  progress.promptTokens = prompt.length;
  const seq = await loaded.sequences.acquire();
  timer?.started();
  try {
    const result = await generate(loaded, seq, prompt, {
      promptParam: task.promptParam,
      sampling: task.sampling,
      shaping: task.shaping,
      logprobs: task.logprobs,
      cancelled,
      emit,
      onGrammar: timer && ((fromMs) => timer.grammar(fromMs)),
      onStarted: (n) => {
        progress.generating = true;
        observer.started(n);
      },
      onToken: (n) => {
        progress.completionTokens = n;
        observer.token();
        timer?.token(n);
        if (fault) injectFault(fault, n);
      },
    });
    emit({ type: 'done', ...result });
  } finally {
    loaded.sequences.release(seq);
  }
}
