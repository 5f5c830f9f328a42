/**
 * POST /tokenize and POST /detokenize, in both shapes clients use: llama.cpp's (`content`, `tokens`,
 * `with_pieces`, answers `tokens` / `content`) and vLLM's (`prompt` or chat `messages`, answers `tokens`,
 * `count`, `max_model_len` / `prompt`). Chat messages are rendered with the model's template exactly as a
 * generation would be, so `count` is the prompt_tokens a chat completion would report.
 *
 * The work (and the answer's JSON, megabytes for a large input) is done by a tokenizer worker: the main
 * thread only parses the request and writes the body out.
 */
import { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import { invalidValue, parseBody } from '../core/validation.js';
import { bodySize } from '../middleware/body-size.js';
import { chatInput } from '../openai/request.js';
import { createSchemas } from '../openai/schemas.js';
import { ROUTES } from '../route-table.js';

const tokenizeBody = z.object({
  model: z.string().nullish(),
  content: z.string().optional(),
  prompt: z.string().optional(),
  messages: z.array(z.unknown()).optional(),
  /** llama.cpp: parse special-token text such as <|im_start|> into its id (default true). */
  parse_special: z.boolean().optional(),
  /** llama.cpp: answer [{id, piece}] instead of ids. */
  with_pieces: z.boolean().optional(),
});

const detokenizeBody = z.object({
  model: z.string().nullish(),
  tokens: z.array(z.number().int('must be integers').min(0, 'must be token ids (>= 0)'), { error: 'must be an array of token ids' }),
});

export function tokenizeRoutes(ctx: AppContext): Router {
  const router = Router();
  const chatSchema = createSchemas(ctx.limits).chat;

  router.post(ROUTES.tokenize.path, async (req, res) => {
    const body = parseBody(tokenizeBody, req.body);
    const text = body.content ?? body.prompt;
    if (body.messages === undefined && text === undefined)
      throw invalidValue('content', 'is required (the text to tokenize; or prompt, or messages)');
    const source =
      body.messages !== undefined
        ? { input: chatInput(parseBody(chatSchema, { messages: body.messages }), ctx.limits.maxJsonDepth) }
        : { text: text!, special: body.parse_special ?? true };
    const model = ctx.models.vocabulary(body.model);
    const result = await model.prepare.run(
      { op: 'tokenize', source, pieces: body.with_pieces === true, maxModelLen: model.budgets.contextSize },
      bodySize(req),
    );
    res.type('application/json').send(result.body);
  });

  router.post(ROUTES.detokenize.path, async (req, res) => {
    const body = parseBody(detokenizeBody, req.body);
    const { text } = await ctx.models
      .vocabulary(body.model)
      .prepare.run({ op: 'detokenize', tokens: body.tokens, param: 'tokens' }, bodySize(req));
    res.json({ content: text, prompt: text });
  });

  return router;
}
