/** POST /v1/completions and POST /v1/chat/completions. */
import { Router } from 'express';
import type { AppContext } from '../context.js';
import { serveGeneration } from '../core/generation.js';
import { parseBody } from '../core/validation.js';
import { ROUTES } from '../route-table.js';
import { chatRenderer, completionRenderer } from './render.js';
import { chatRequest, completionRequest } from './request.js';
import { createSchemas } from './schemas.js';

export function openaiRoutes(ctx: AppContext): Router {
  const router = Router();
  const schemas = createSchemas(ctx.limits);

  router.post(ROUTES.completions.path, async (req, res) => {
    const body = parseBody(schemas.completion, req.body);
    const includeUsage = body.stream === true && body.stream_options?.include_usage === true;
    // echo sends each prompt's text first (token-id prompts are detokenized by the tokenizer workers).
    await serveGeneration(ctx, req, res, completionRequest(body), ({ echo }, model) => completionRenderer({ model, includeUsage, echo }));
  });

  router.post(ROUTES.chat.path, async (req, res) => {
    const body = parseBody(schemas.chat, req.body);
    const includeUsage = body.stream === true && body.stream_options?.include_usage === true;
    const request = chatRequest(body, ctx.limits.maxJsonDepth);
    await serveGeneration(ctx, req, res, request, (_, model) => chatRenderer({ model, includeUsage }, request.n ?? 1));
  });

  return router;
}
