/**
 * Piscina worker entry. Loads the model once (top-level await: Piscina sends no task before the
 * module has loaded), announces readiness on its parentPort, then serves up to S tasks at once, each
 * on its own sequence. Tokens go back on the task's MessagePort; `cancel` arrives on it too — the
 * worker is never terminated while generating (that aborts the whole process).
 */
import { BroadcastChannel, parentPort, threadId } from 'node:worker_threads';
import type { Token } from 'node-llama-cpp';
import { workerData } from 'piscina';
import { WorkerMetrics } from '../src/metrics/worker-metrics.js';
import {
  WORKERS_CHANNEL,
  type ControlMessage,
  type ErrorPayload,
  type GenerateTask,
  type MainMessage,
  type WorkerInit,
  type WorkerMessage,
  type WorkerRequest,
} from '../src/shared/protocol.js';
import { embed } from './embed.js';
import { loadModel, type LoadedEmbedder, type LoadedModel } from './model.js';
import { crashWorker, injectFault, InjectedCrash } from './faults.js';
import { generate, GenerationError } from './generate.js';

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
const requests = new BroadcastChannel(WORKERS_CHANNEL);
requests.unref();
requests.onmessage = (event) => {
  const msg = (event as { data: WorkerRequest }).data;
  if (msg.type === 'collect') {
    void metrics.snapshot().then((json) => announce({ type: 'metrics', workerId: threadId, id: msg.id, metrics: json }));
  }
};

const started = process.hrtime.bigint();
try {
  const model = await loadModel(init, { onStep: (stats) => metrics.step(stats) });
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
function checkMode(kind: 'generate' | 'embed', mode: 'generate' | 'embed'): void {
  if (kind === mode) return;
  const message =
    kind === 'embed'
      ? `The model '${init.modelId}' is an embedding model (its GGUF declares a pooling type): use /v1/embeddings.`
      : `The model '${init.modelId}' is a text-generation model, not an embedding model: /v1/embeddings needs a GGUF that declares a pooling type (an embedding model such as gte-Qwen2).`;
  const code = kind === 'embed' ? 'model_not_generative' : 'model_not_embedding';
  throw new GenerationError({ status: 400, type: 'invalid_request_error', code, message, param: 'model' });
}

function internalError(err: unknown): ErrorPayload {
  const message = err instanceof Error ? err.message : String(err);
  return { status: 500, type: 'server_error', code: 'generation_failed', message: `Generation failed: ${message}`, param: null };
}

export default async function run(task: GenerateTask): Promise<void> {
  const { port } = task;
  let cancelled = false;
  port.on('message', (msg: MainMessage) => {
    if (msg.type === 'cancel') cancelled = true;
  });
  const emit = (msg: WorkerMessage) => port.postMessage(msg);
  const observer = metrics.request(task.admittedAtMs);
  const fault = init.faults ? task.fault : undefined;
  let promptTokens = 0;
  let completionTokens = 0;
  let generating = false;
  try {
    if (!loaded) throw new Error(`model failed to load: ${loadError}`);
    checkMode(loaded.kind, task.mode ?? 'generate');
    if (loaded.kind === 'embed') {
      const { vector, tokens } = await embed(loaded, task.prompt, task.promptParam);
      promptTokens = tokens;
      observer.started(tokens);
      generating = true;
      emit({ type: 'started', promptTokens: tokens });
      emit({ type: 'embedding', vector });
      emit({ type: 'done', finishReason: 'stop', promptTokens: tokens, completionTokens: 0, cachedTokens: 0 });
      return;
    }
    const prompt = task.prompt as Token[];
    promptTokens = prompt.length;
    const seq = await loaded.sequences.acquire();
    try {
      const result = await generate(loaded, seq, prompt, {
        promptParam: task.promptParam,
        sampling: task.sampling,
        shaping: task.shaping,
        logprobs: task.logprobs,
        cancelled: () => cancelled,
        emit,
        onStarted: (n) => {
          generating = true;
          observer.started(n);
        },
        onToken: (n) => {
          completionTokens = n;
          observer.token();
          injectFault(fault, n);
        },
      });
      emit({ type: 'done', ...result });
    } finally {
      loaded.sequences.release(seq);
    }
  } catch (err) {
    if (err instanceof InjectedCrash) await crashWorker();
    const payload = err instanceof GenerationError ? err.payload : internalError(err);
    emit({ type: 'error', error: payload, promptTokens, completionTokens });
  } finally {
    if (generating) observer.finished(completionTokens);
    // The main thread closes the channel once it has read done/error; closing here could drop them.
    port.removeAllListeners('message');
  }
}
