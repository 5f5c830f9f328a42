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
import { endpointLabel } from '../request-context.js';
import { ROUTES } from '../route-table.js';
import { parseBody } from '../schemas.js';
import { checkModel } from './check-model.js';
import { choiceTasks } from './generation.js';

export function messagesRoutes(ctx: AppContext): Router {
  const router = Router();
  const schemas = messagesSchemas(ctx.limits);

  router.post(ROUTES.messages.path, (req, res) => {
    const body = parseBody(schemas.messages, req.body);
    const input = messagesInput(body);
    const constraints = messagesConstraints(body);
    checkModel(ctx, body.model);
    ctx.metrics.features(endpointLabel(req), featuresOf(constraints, undefined));
    respond(ctx.dispatcher, res, {
      tasks: choiceTasks([input], 1, messagesSampling(body), constraints),
      renderer: messagesRenderer(ctx.modelId),
      stream: body.stream === true,
      onToolCalls: (count) => ctx.metrics.toolCalls(count),
    });
  });

  router.post(ROUTES.countTokens.path, (req, res) => {
    const body = parseBody(schemas.countTokens, req.body);
    const tokens = ctx.vocabulary.get().prompt(messagesInput(body), messagesConstraints(body));
    res.json({ input_tokens: tokens.length });
  });

  return router;
}
