/**
 * POST /v1/embeddings, for embedding models (a GGUF that declares a pooling type). Each input is one task
 * through the same dispatcher and respond() as a completion's choices (queue, timeouts, metrics); a
 * text-generation model answers 400 `model_not_embedding` (core/check-model.ts, from the model's GGUF).
 */
import { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import { requestModel } from '../core/check-model.js';
import { traceOf } from '../core/trace.js';
import { prepareChoices } from '../core/prepare.js';
import { respond } from '../core/respond.js';
import { invalidValue, parseBody } from '../core/validation.js';
import { bodySize } from '../middleware/body-size.js';
import { ROUTES } from '../route-table.js';
import { inputsOf, textsOrTokens } from './schemas.js';

/** Most inputs in one request: each is a task of its own. */
const MAX_INPUTS = 64;

const body = z.object({
  model: z.string().nullish(),
  input: textsOrTokens,
  encoding_format: z.enum(['float', 'base64'], { error: "must be 'float' or 'base64'" }).nullish(),
  dimensions: z.never({ error: 'dimensions is not supported: the model returns its own size' }).nullish(),
  user: z.string().nullish(),
});

/** OpenAI's base64 encoding: little-endian float32. */
const base64 = (v: number[]) => Buffer.from(new Float32Array(v).buffer).toString('base64');

export function embeddingsRoutes(ctx: AppContext): Router {
  const router = Router();
  router.post(ROUTES.embeddings.path, async (req, res) => {
    const b = parseBody(body, req.body);
    const inputs = inputsOf(b.input, 'input');
    if (inputs.length > MAX_INPUTS) {
      throw invalidValue('input', `at most ${MAX_INPUTS} inputs per request`);
    }
    // As OpenAI: an empty text has no embedding (the model would return an empty vector).
    for (const input of inputs) {
      if (input.kind === 'text' && input.prompt === '') {
        throw invalidValue(input.param ?? 'input', 'must not be empty (an empty text has no embedding)');
      }
    }
    const model = requestModel(ctx, res, b.model, 'embed');
    const trace = traceOf(res);
    trace?.setAttributes({
      'gen_ai.operation.name': 'embeddings',
      'gen_ai.request.model': b.model ?? model.id,
      'gen_ai.response.model': model.id,
      'qwen.inputs': inputs.length,
    });
    const { tasks, release } = await prepareChoices(ctx, model, {
      bodyBytes: bodySize(req),
      trace,
      inputs,
      n: 1,
      constraints: {},
      params: { prompt: 'input' },
      mode: 'embed',
    });
    respond(model.dispatcher, res, {
      tasks,
      release,
      trace,
      exemplars: { sink: ctx.metrics.exemplars, model: model.id },
      stream: false,
      renderer: {
        full: (answers, usage) => ({
          object: 'list',
          data: answers.map((a, index) => ({
            object: 'embedding',
            index,
            embedding: b.encoding_format === 'base64' ? base64(a.embedding!) : a.embedding,
          })),
          model: model.id,
          usage: { prompt_tokens: usage.promptTokens, total_tokens: usage.promptTokens },
        }),
      },
    });
  });
  return router;
}
