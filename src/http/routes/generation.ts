/** POST /v1/completions and POST /v1/chat/completions. */
import { Router } from 'express';
import type { AppContext } from '../context.js';
import { chatConstraints, completionConstraints, featuresOf } from '../constraints.js';
import { chatRenderer, completionRenderer } from '../openai-format.js';
import { bodySize } from '../body-size.js';
import { prepareChoices } from '../prepare.js';
import { respond } from '../respond.js';
import { chatInput, completionInputs, createSchemas, parseBody, samplingParams } from '../schemas.js';
import { checkModel } from './check-model.js';
import { endpointLabel } from '../request-context.js';
import { ROUTES } from '../route-table.js';

/** OpenAI's default for /v1/completions; chat defaults to the rest of the context. */
const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

export function generationRoutes(ctx: AppContext): Router {
  const router = Router();
  const schemas = createSchemas(ctx.limits);

  router.post(ROUTES.completions.path, async (req, res) => {
    const body = parseBody(schemas.completion, req.body);
    const inputs = completionInputs(body);
    const constraints = completionConstraints(body, ctx.schemaLimits);
    checkModel(ctx, body.model);
    ctx.metrics.features(endpointLabel(req), featuresOf(constraints, body.response_format));
    const sampling = samplingParams(body, body.max_tokens ?? COMPLETIONS_DEFAULT_MAX_TOKENS, 'max_tokens');
    const stream = body.stream === true;
    // echo sends each prompt's text first (token-id prompts are detokenized by the tokenizer workers).
    const { tasks, echo, release } = await prepareChoices(ctx, {
      bodyBytes: bodySize(req),
      inputs,
      n: body.n ?? 1,
      sampling,
      constraints,
      params: { prompt: 'prompt', shaping: 'response_format', logprobs: 'logprobs' },
      echo: body.echo === true,
    });
    respond(ctx.dispatcher, res, {
      tasks,
      release,
      renderer: completionRenderer({ model: ctx.modelId, includeUsage: stream && body.stream_options?.include_usage === true, echo }),
      stream,
    });
  });

  router.post(ROUTES.chat.path, async (req, res) => {
    const body = parseBody(schemas.chat, req.body);
    const input = chatInput(body, ctx.limits.maxJsonDepth);
    const constraints = chatConstraints(body, ctx.schemaLimits);
    checkModel(ctx, body.model);
    ctx.metrics.features(endpointLabel(req), featuresOf(constraints, body.response_format));
    const maxTokensParam = body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
    const sampling = samplingParams(body, body.max_completion_tokens ?? body.max_tokens ?? undefined, maxTokensParam);
    const stream = body.stream === true;
    const n = body.n ?? 1;
    const { tasks, release } = await prepareChoices(ctx, {
      bodyBytes: bodySize(req),
      inputs: [input],
      n,
      sampling,
      constraints,
      params: {
        prompt: 'messages',
        shaping: constraints.tools ? 'tools' : 'response_format',
        logprobs: body.top_logprobs ? 'top_logprobs' : 'logprobs',
      },
    });
    respond(ctx.dispatcher, res, {
      tasks,
      release,
      renderer: chatRenderer({ model: ctx.modelId, includeUsage: stream && body.stream_options?.include_usage === true }, n),
      stream,
      onToolCalls: (count) => ctx.metrics.toolCalls(count),
    });
  });

  return router;
}
