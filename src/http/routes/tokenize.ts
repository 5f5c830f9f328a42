/**
 * POST /tokenize and POST /detokenize, in both shapes clients use: llama.cpp's (`content`, `tokens`,
 * `with_pieces`, answers `tokens` / `content`) and vLLM's (`prompt` or chat `messages`, answers `tokens`,
 * `count`, `max_model_len` / `prompt`). Chat messages are rendered with the model's template exactly as a
 * generation would be, so `count` is the prompt_tokens a chat completion would report.
 */
import { Router } from 'express';
import { z } from 'zod';
import type { Token } from 'node-llama-cpp';
import { InvalidRequestError } from '../../errors.js';
import { checkedTokens } from '../../shared/prompt.js';
import type { AppContext } from '../context.js';
import { ROUTES } from '../route-table.js';
import { chatInput, createSchemas, parseBody } from '../schemas.js';

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

  router.post(ROUTES.tokenize.path, (req, res) => {
    const body = parseBody(tokenizeBody, req.body);
    const vocabulary = ctx.vocabulary.get();
    let tokens: Token[];
    if (body.messages !== undefined) {
      tokens = vocabulary.prompt(chatInput(parseBody(chatSchema, { messages: body.messages }), ctx.limits.maxJsonDepth));
    } else {
      const text = body.content ?? body.prompt;
      if (text === undefined) throw parseError('content', 'is required (the text to tokenize; or prompt, or messages)');
      tokens = vocabulary.tokenize(text, body.parse_special ?? true);
    }
    res.json({
      tokens: body.with_pieces ? tokens.map((id) => ({ id, piece: vocabulary.piece(id) })) : tokens,
      count: tokens.length,
      max_model_len: ctx.contextSize,
    });
  });

  router.post(ROUTES.detokenize.path, (req, res) => {
    const body = parseBody(detokenizeBody, req.body);
    const vocabulary = ctx.vocabulary.get();
    const text = vocabulary.detokenize(checkedTokens(body.tokens, vocabulary.size, 'tokens'), true);
    res.json({ content: text, prompt: text });
  });

  return router;
}

function parseError(param: string, message: string) {
  return new InvalidRequestError(`${param}: ${message}`, param, 'invalid_value');
}
