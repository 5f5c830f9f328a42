/**
 * POST /v1/messages and POST /v1/messages/count_tokens: the Anthropic Messages API over the same generation
 * path as every dialect. Errors on these routes take Anthropic's shape (errors.ts, chosen by the route
 * table's dialect); clients authenticate with x-api-key (middleware/auth.ts).
 */
import { Router } from 'express';
import type { AppContext } from '../context.js';
import { serveGeneration } from '../core/generation.js';
import { outputConstraints } from '../core/shape.js';
import { parseBody } from '../core/validation.js';
import { bodySize } from '../middleware/body-size.js';
import { ROUTES } from '../route-table.js';
import { messagesRenderer } from './render.js';
import { messagesInput, messagesRequest, messagesSchemas, messagesShape } from './request.js';

export function anthropicRoutes(ctx: AppContext): Router {
  const router = Router();
  const schemas = messagesSchemas(ctx.limits);

  router.post(ROUTES.messages.path, async (req, res) => {
    const body = parseBody(schemas.messages, req.body);
    await serveGeneration(ctx, req, res, messagesRequest(body), (_, model) => messagesRenderer(model));
  });

  router.post(ROUTES.countTokens.path, async (req, res) => {
    const body = parseBody(schemas.countTokens, req.body);
    const input = messagesInput(body);
    const tools = outputConstraints(messagesShape(body), ctx.schemaLimits).tools?.functions;
    const model = ctx.models.vocabulary(body.model);
    const { value } = await model.prepare.run({ op: 'prompts', inputs: [input], tools, param: 'messages' }, bodySize(req));
    res.json({ input_tokens: value.prompts[0]!.tokens.length });
  });

  return router;
}
