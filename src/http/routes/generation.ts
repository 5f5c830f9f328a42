/** POST /v1/completions and POST /v1/chat/completions. */
import { randomUUID } from 'node:crypto';
import { Router } from 'express';
import type { GenerateInput, OutputConstraints, SamplingParams } from '../../shared/protocol.js';
import type { AppContext } from '../context.js';
import { chatConstraints, completionConstraints, featuresOf } from '../constraints.js';
import { chatRenderer, completionRenderer } from '../openai-format.js';
import { respond, type ChoiceTask } from '../respond.js';
import { endpointLabel } from '../request-context.js';
import { ROUTES } from '../route-table.js';
import { chatInput, completionInputs, createSchemas, parseBody, samplingParams } from '../schemas.js';
import { checkModel } from './check-model.js';

/** OpenAI's default for /v1/completions; chat defaults to the rest of the context. */
const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

/**
 * n choices for each input. With a seed, choice i samples with seed + i: the same seed for all would give
 * n identical answers; without one, every choice draws its own.
 */
export function choiceTasks(
  inputs: readonly GenerateInput[],
  n: number,
  sampling: SamplingParams,
  constraints: OutputConstraints,
): ChoiceTask[] {
  return inputs.flatMap((input) =>
    Array.from({ length: n }, (_, i) => ({
      requestId: randomUUID(),
      input,
      sampling: sampling.seed === undefined ? sampling : { ...sampling, seed: (sampling.seed + i) % 2 ** 32 },
      constraints,
      countsPrompt: i === 0,
    })),
  );
}

export function generationRoutes(ctx: AppContext): Router {
  const router = Router();
  const schemas = createSchemas(ctx.limits);

  router.post(ROUTES.completions.path, (req, res) => {
    const body = parseBody(schemas.completion, req.body);
    const inputs = completionInputs(body);
    const constraints = completionConstraints(body);
    checkModel(ctx, body.model);
    // echo sends each prompt's text first: token-id prompts are detokenized by the main thread's vocabulary.
    const echo = body.echo
      ? inputs.flatMap((input) => {
          const text =
            input.kind === 'tokens'
              ? ctx.vocabulary.get().detokenize(input.tokens as never, false)
              : input.kind === 'text'
                ? input.prompt
                : '';
          return Array<string>(body.n ?? 1).fill(text);
        })
      : undefined;
    ctx.metrics.features(endpointLabel(req), featuresOf(constraints, body.response_format));
    const sampling = samplingParams(body, body.max_tokens ?? COMPLETIONS_DEFAULT_MAX_TOKENS, 'max_tokens');
    const stream = body.stream === true;
    respond(ctx.dispatcher, res, {
      tasks: choiceTasks(inputs, body.n ?? 1, sampling, constraints),
      renderer: completionRenderer({ model: ctx.modelId, includeUsage: stream && body.stream_options?.include_usage === true, echo }),
      stream,
    });
  });

  router.post(ROUTES.chat.path, (req, res) => {
    const body = parseBody(schemas.chat, req.body);
    const input = chatInput(body, ctx.limits.maxJsonDepth);
    const constraints = chatConstraints(body);
    checkModel(ctx, body.model);
    ctx.metrics.features(endpointLabel(req), featuresOf(constraints, body.response_format));
    const maxTokensParam = body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
    const sampling = samplingParams(body, body.max_completion_tokens ?? body.max_tokens ?? undefined, maxTokensParam);
    const stream = body.stream === true;
    const n = body.n ?? 1;
    respond(ctx.dispatcher, res, {
      tasks: choiceTasks([input], n, sampling, constraints),
      renderer: chatRenderer({ model: ctx.modelId, includeUsage: stream && body.stream_options?.include_usage === true }, n),
      stream,
      onToolCalls: (count) => ctx.metrics.toolCalls(count),
    });
  });

  return router;
}
