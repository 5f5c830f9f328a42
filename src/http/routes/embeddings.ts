/**
 * POST /v1/embeddings, for embedding models (a GGUF that declares a pooling type). Each input is one task
 * through the same dispatcher (queue, timeouts, metrics); a text-generation model answers 400
 * `model_not_embedding` from its worker.
 */
import { randomUUID } from 'node:crypto';
import { Router, type Response } from 'express';
import { z } from 'zod';
import type { Dispatcher } from '../../dispatch/dispatcher.js';
import type { Job } from '../../dispatch/job.js';
import { InvalidRequestError, type ApiError } from '../../errors.js';
import type { GenerateInput, SamplingParams } from '../../shared/protocol.js';
import type { AppContext } from '../context.js';
import { sendError } from '../error-handler.js';
import { parseBody } from '../schemas.js';
import { checkModel } from './check-model.js';

/** Most inputs in one request: each is a task of its own. */
const MAX_INPUTS = 64;

const tokenIds = z.array(z.number().int('token ids must be integers').min(0, 'token ids must be >= 0')).min(1, 'must not be empty');
const body = z.object({
  model: z.string().nullish(),
  input: z.union([z.string(), z.array(z.string()).min(1, 'must not be empty'), tokenIds, z.array(tokenIds).min(1, 'must not be empty')], {
    error: 'must be a string, an array of strings, an array of token ids, or an array of token-id arrays',
  }),
  encoding_format: z.enum(['float', 'base64'], { error: "must be 'float' or 'base64'" }).nullish(),
  dimensions: z.never({ error: 'dimensions is not supported: the model returns its own size' }).nullish(),
  user: z.string().nullish(),
});

/** Sampling is unused by embeddings; the task shape carries it anyway. */
const NO_SAMPLING: SamplingParams = {
  temperature: 0,
  topP: 1,
  topK: 0,
  presencePenalty: 0,
  frequencyPenalty: 0,
  maxTokens: 1,
  maxTokensParam: 'max_tokens',
  stop: [],
  ignoreEos: false,
  logitBias: [],
};

/** OpenAI's base64 encoding: little-endian float32. */
const base64 = (v: number[]) => Buffer.from(new Float32Array(v).buffer).toString('base64');

export function embeddingsRoutes(ctx: AppContext): Router {
  const router = Router();
  router.post('/v1/embeddings', (req, res) => {
    const b = parseBody(body, req.body);
    const inputs: GenerateInput[] = (
      typeof b.input === 'string' ? [b.input] : typeof b.input[0] === 'number' ? [b.input as number[]] : (b.input as string[] | number[][])
    ).map((i) => (typeof i === 'string' ? { kind: 'text', prompt: i } : { kind: 'tokens', tokens: i }));
    if (inputs.length > MAX_INPUTS)
      throw new InvalidRequestError(`input: at most ${MAX_INPUTS} inputs per request`, 'input', 'invalid_value');
    checkModel(ctx, b.model);
    run(ctx.dispatcher, res, inputs, (vectors, promptTokens) => ({
      object: 'list',
      data: vectors.map((v, index) => ({ object: 'embedding', index, embedding: b.encoding_format === 'base64' ? base64(v) : v })),
      model: ctx.modelId,
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    }));
  });
  return router;
}

/** One task per input; the response once all are done, or the first error. */
function run(
  dispatcher: Dispatcher,
  res: Response,
  inputs: GenerateInput[],
  render: (vectors: number[][], promptTokens: number) => object,
): void {
  const vectors: number[][] = [];
  const jobs: Job[] = [];
  let promptTokens = 0;
  let pending = inputs.length;
  let failed = false;
  const fail = (err: ApiError) => {
    if (failed) return;
    failed = true;
    for (const job of jobs) job.cancel('client');
    if (!res.destroyed) sendError(res, err);
  };
  inputs.forEach((input, i) => {
    const task = { requestId: randomUUID(), input, sampling: NO_SAMPLING, constraints: {}, mode: 'embed' as const };
    jobs.push(
      dispatcher.submit(task, {
        onStarted: () => {},
        onText: () => {},
        onToolCall: () => {},
        onEmbedding: (v) => (vectors[i] = v),
        onDone: (_, usage) => {
          promptTokens += usage.promptTokens;
          if (--pending === 0 && !failed && !res.destroyed) res.json(render(vectors, promptTokens));
        },
        onError: fail,
      }),
    );
  });
  res.on('close', () => {
    if (!res.writableFinished) for (const job of jobs) job.cancel('client');
  });
}
