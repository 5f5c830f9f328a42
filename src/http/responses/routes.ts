/** POST /v1/responses. */
import { Router } from 'express';
import type { AppContext } from '../context.js';
import { serveGeneration } from '../core/generation.js';
import { parseBody } from '../core/validation.js';
import { ROUTES } from '../route-table.js';
import { responsesRenderer } from './render.js';
import { responsesRequest, responsesSchema } from './request.js';

export function responsesRoutes(ctx: AppContext): Router {
  const router = Router();
  const schema = responsesSchema(ctx.limits);

  router.post(ROUTES.responses.path, async (req, res) => {
    const body = parseBody(schema, req.body);
    await serveGeneration(ctx, req, res, responsesRequest(body, ctx.limits.maxJsonDepth), (_, model) => responsesRenderer(model, body));
  });

  return router;
}
