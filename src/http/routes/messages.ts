/**
 * POST /v1/messages and POST /v1/messages/count_tokens: the Anthropic Messages API as a thin adapter over
 * the chat path and the same dispatcher. Errors on these paths take Anthropic's shape (error-handler.ts);
 * clients authenticate with x-api-key (auth.ts).
 */
import { Router } from 'express';
import { messagesConstraints, messagesInput, messagesSampling, messagesSchemas } from '../anthropic/request.js';
import { messagesRenderer } from '../anthropic/render.js';
import type { AppContext } from '../context.js';
import { featuresOf } from '../constraints.js';
import { respond } from '../respond.js';
import { parseBody } from '../schemas.js';
import { checkModel } from './check-model.js';
import { bodySize } from '../body-size.js';
import { prepareChoices } from '../prepare.js';
import { endpointLabel } from '../request-context.js';
import { ROUTES } from '../route-table.js';

export function messagesRoutes(ctx: AppContext): Router {
  const router = Router();
  const schemas = messagesSchemas(ctx.limits);

  router.post(ROUTES.messages.path, async (req, res) => {
    const body = parseBody(schemas.messages, req.body);
    const input = messagesInput(body);
    const constraints = messagesConstraints(body, ctx.schemaLimits);
    checkModel(ctx, body.model);
    ctx.metrics.features(endpointLabel(req), featuresOf(constraints, undefined));
    const { tasks, release } = await prepareChoices(ctx, {
      bodyBytes: bodySize(req),
      inputs: [input],
      n: 1,
      sampling: messagesSampling(body),
      constraints,
      params: { prompt: 'messages', shaping: 'tools' },
    });
    respond(ctx.dispatcher, res, {
      tasks,
      release,
      renderer: messagesRenderer(ctx.modelId),
      stream: body.stream === true,
      onToolCalls: (count) => ctx.metrics.toolCalls(count),
    });
  });

  router.post(ROUTES.countTokens.path, async (req, res) => {
    const body = parseBody(schemas.countTokens, req.body);
    const tools = messagesConstraints(body, ctx.schemaLimits).tools?.functions;
    const { value } = await ctx.prepare.run({ op: 'prompts', inputs: [messagesInput(body)], tools, param: 'messages' }, bodySize(req));
    res.json({ input_tokens: value.prompts[0]!.tokens.length });
  });

  return router;
}
