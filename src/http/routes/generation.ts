/** POST /v1/completions and POST /v1/chat/completions. */
import { randomUUID } from 'node:crypto';
import { Router } from 'express';
import { NotFoundError, NotReadyError } from '../../errors.js';
import { readyWorkers } from '../../engine/status.js';
import type { AppContext } from '../context.js';
import { chatFormat, completionFormat } from '../openai-format.js';
import { chatConstraints, completionConstraints, featuresOf } from '../constraints.js';
import { respond } from '../respond.js';
import { chatInput, completionInput, createSchemas, parseBody, samplingParams } from '../schemas.js';

/** OpenAI's default for /v1/completions; chat defaults to the rest of the context. */
const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

export function generationRoutes(ctx: AppContext): Router {
  const router = Router();
  const schemas = createSchemas(ctx.limits);

  const checkModel = (model: string | null | undefined) => {
    if (model != null && model !== ctx.modelId) {
      throw new NotFoundError(`The model '${model}' does not exist; this server serves '${ctx.modelId}'.`, 'model_not_found', 'model');
    }
    if (readyWorkers(ctx.engines) === 0) throw new NotReadyError();
  };

  router.post('/v1/completions', (req, res) => {
    const body = parseBody(schemas.completion, req.body);
    const constraints = completionConstraints(body);
    checkModel(body.model);
    ctx.metrics.features(req.path, featuresOf(constraints, body.response_format));
    const includeUsage = body.stream_options?.include_usage === true;
    respond(ctx.dispatcher, res, {
      task: {
        requestId: randomUUID(),
        input: completionInput(body),
        sampling: samplingParams(body, body.max_tokens ?? COMPLETIONS_DEFAULT_MAX_TOKENS, 'max_tokens'),
        constraints,
      },
      format: completionFormat(ctx.modelId, includeUsage && body.stream === true),
      stream: body.stream === true,
      includeUsage,
    });
  });

  router.post('/v1/chat/completions', (req, res) => {
    const body = parseBody(schemas.chat, req.body);
    const input = chatInput(body);
    const constraints = chatConstraints(body);
    checkModel(body.model);
    ctx.metrics.features(req.path, featuresOf(constraints, body.response_format));
    const includeUsage = body.stream_options?.include_usage === true;
    const maxTokensParam = body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
    respond(ctx.dispatcher, res, {
      task: {
        requestId: randomUUID(),
        input,
        sampling: samplingParams(body, body.max_completion_tokens ?? body.max_tokens ?? undefined, maxTokensParam),
        constraints,
      },
      format: chatFormat(ctx.modelId, includeUsage && body.stream === true),
      stream: body.stream === true,
      includeUsage,
      onToolCalls: (n) => ctx.metrics.toolCalls(n),
    });
  });

  return router;
}
