/**
 * Content the model cannot read (images, audio, files, documents) is a 400 that says the model is
 * text-only and names the part, on all three APIs through their official clients; Anthropic thinking
 * blocks in the history are accepted and left out of the prompt, as Anthropic does.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import { useClientServer } from './helpers/client.js';

const MODEL = 'content-test';
const ctx = useClientServer(MODEL);
let anthropic: Anthropic;
beforeAll(() => {
  anthropic = new Anthropic({ baseURL: ctx.server.url, apiKey: 'x', maxRetries: 0 });
});

const TEXT_ONLY = /are not supported: this model reads text only$/;

async function openaiError(p: Promise<unknown>): Promise<InstanceType<typeof OpenAI.BadRequestError>> {
  const err = await p.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(OpenAI.BadRequestError);
  return err as InstanceType<typeof OpenAI.BadRequestError>;
}

/** The message as the server wrote it (the client's own message starts with the status). */
const errorMessage = (e: InstanceType<typeof OpenAI.APIError>) => (e.error as { message: string }).message;

async function anthropicMessage(p: Promise<unknown>): Promise<string> {
  const err = await p.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(Anthropic.BadRequestError);
  const body = (err as { error: { type: string; error: { type: string; message: string } } }).error;
  expect(body.type).toBe('error');
  expect(body.error.type).toBe('invalid_request_error');
  return body.error.message;
}

describe('OpenAI chat content parts', () => {
  const parts: [string, OpenAI.ChatCompletionContentPart][] = [
    ['image_url', { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }],
    ['input_audio', { type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }],
    ['file', { type: 'file', file: { file_data: 'AAAA', filename: 'a.pdf' } }],
  ];
  it.each(parts)('%s: a 400 naming the part', async (type, part) => {
    const e = await openaiError(
      ctx.client.chat.completions.create({
        model: MODEL,
        messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, part] }],
      }),
    );
    expect(e.param).toBe('messages.0.content.1.type');
    expect(errorMessage(e)).toBe(`messages.0.content.1.type: '${type}' content parts are not supported: this model reads text only`);
  });

  it('text parts are served', async () => {
    const r = await ctx.client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }],
      max_tokens: 2,
    });
    expect(r.choices[0]!.finish_reason).toBe('length');
  });
});

describe('Responses content parts', () => {
  it.each([
    ['input_image', { type: 'input_image' as const, image_url: 'data:image/png;base64,AAAA', detail: 'auto' as const }],
    ['input_file', { type: 'input_file' as const, file_data: 'AAAA', filename: 'a.pdf' }],
  ])('%s: a 400 naming the part', async (type, part) => {
    const e = await openaiError(
      ctx.client.responses.create({
        model: MODEL,
        input: [{ role: 'user', content: [{ type: 'input_text', text: 'What is this?' }, part] }],
      }),
    );
    expect(e.param).toBe('input.0.content.1.type');
    expect(errorMessage(e)).toMatch(new RegExp(`^input\\.0\\.content\\.1\\.type: '${type}' content parts ${TEXT_ONLY.source}`));
  });
});

describe('Anthropic blocks', () => {
  const image = { type: 'image' as const, source: { type: 'base64' as const, media_type: 'image/png' as const, data: 'AAAA' } };
  const document = { type: 'document' as const, source: { type: 'text' as const, media_type: 'text/plain' as const, data: 'doc' } };

  it.each([
    ['image', image],
    ['document', document],
  ])('%s: a 400 naming the block', async (type, block) => {
    const message = await anthropicMessage(
      anthropic.messages.create({
        model: MODEL,
        max_tokens: 5,
        messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, block] }],
      }),
    );
    expect(message).toBe(`messages.0.content.1.type: '${type}' blocks are not supported: this model reads text only`);
  });

  it('an image in a tool result: a 400 naming it', async () => {
    const message = await anthropicMessage(
      anthropic.messages.countTokens({
        model: MODEL,
        messages: [
          { role: 'user', content: 'Look' },
          { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'look', input: {} }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: [image] }] },
        ],
      }),
    );
    expect(message).toMatch(/^messages\.2\.content\.0\.content\.0\.type: 'image' blocks /);
  });

  const question = { role: 'user' as const, content: 'What is 2+2?' };
  const thinkingTurn = {
    role: 'assistant' as const,
    content: [
      { type: 'thinking' as const, thinking: 'Two and two make four.', signature: 'sig' },
      { type: 'redacted_thinking' as const, data: 'opaque' },
      { type: 'text' as const, text: 'Four.' },
    ],
  };
  const plainTurn = { role: 'assistant' as const, content: [{ type: 'text' as const, text: 'Four.' }] };
  const followUp = { role: 'user' as const, content: 'And 3+3?' };

  it('thinking and redacted_thinking blocks in assistant history are accepted and left out of the prompt', async () => {
    const withThinking = await anthropic.messages.countTokens({ model: MODEL, messages: [question, thinkingTurn, followUp] });
    const without = await anthropic.messages.countTokens({ model: MODEL, messages: [question, plainTurn, followUp] });
    expect(withThinking.input_tokens).toBe(without.input_tokens);
    const m = await anthropic.messages.create({ model: MODEL, max_tokens: 3, messages: [question, thinkingTurn, followUp] });
    expect(m.usage.input_tokens).toBe(without.input_tokens);
    // An assistant turn of nothing but thinking adds nothing.
    const onlyThinking = { role: 'assistant' as const, content: thinkingTurn.content.slice(0, 2) };
    const bare = await anthropic.messages.countTokens({ model: MODEL, messages: [question, onlyThinking, followUp] });
    const noTurn = await anthropic.messages.countTokens({ model: MODEL, messages: [question, followUp] });
    expect(bare.input_tokens).toBe(noTurn.input_tokens);
  });

  it('thinking blocks in a user message are a 400', async () => {
    const message = await anthropicMessage(
      anthropic.messages.create({
        model: MODEL,
        max_tokens: 5,
        messages: [{ role: 'user', content: [{ type: 'thinking', thinking: 'x', signature: 's' }] as never }],
      }),
    );
    expect(message).toBe('messages.0.content.0: thinking blocks belong to assistant messages');
  });
});
