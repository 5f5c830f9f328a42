/**
 * Piscina worker entry. Loads the model once (top-level await: Piscina sends no task before the
 * module has loaded), announces readiness on the control channel, then serves up to S tasks at once,
 * each on its own sequence. Tokens go back on the task's MessagePort; `cancel` arrives on it too —
 * the worker is never terminated while generating (that aborts the whole process).
 */
import { BroadcastChannel, threadId } from 'node:worker_threads';
import { workerData } from 'piscina';
import {
  CONTROL_CHANNEL,
  type ControlMessage,
  type ErrorPayload,
  type GenerateTask,
  type MainMessage,
  type WorkerInit,
  type WorkerMessage,
} from '../src/shared/protocol.js';
import { loadEngine, type Engine } from './engine.js';
import { generate, GenerationError, tokenizeInput } from './generate.js';

const init = workerData as WorkerInit;
const control = new BroadcastChannel(CONTROL_CHANNEL);
control.unref();

const announce = (msg: ControlMessage) => control.postMessage(msg);

let engine: Engine | undefined;
let loadError: string | undefined;
const started = process.hrtime.bigint();
try {
  engine = await loadEngine(init);
  announce({ type: 'ready', workerId: threadId, loadSeconds: Number(process.hrtime.bigint() - started) / 1e9 });
} catch (err) {
  // Report instead of throwing: a module that throws makes Piscina respawn it in a loop.
  loadError = err instanceof Error ? err.message : String(err);
  announce({ type: 'load_failed', workerId: threadId, message: loadError });
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
  let promptTokens = 0;
  let completionTokens = 0;
  try {
    if (!engine) throw new Error(`model failed to load: ${loadError}`);
    const prompt = tokenizeInput(engine, task.input);
    promptTokens = prompt.length;
    const seq = await engine.sequences.acquire();
    try {
      const result = await generate(engine, seq, prompt, {
        input: task.input,
        sampling: task.sampling,
        cancelled: () => cancelled,
        emit: (msg) => {
          if (msg.type === 'text') completionTokens += msg.tokens;
          emit(msg);
        },
      });
      emit({ type: 'done', ...result });
    } finally {
      engine.sequences.release(seq);
    }
  } catch (err) {
    const payload = err instanceof GenerationError ? err.payload : internalError(err);
    emit({ type: 'error', error: payload, promptTokens, completionTokens });
  } finally {
    // The main thread closes the channel once it has read done/error; closing here could drop them.
    port.removeAllListeners('message');
  }
}
