/**
 * The rest of the OpenAI surface, through the official client where it has the field: several choices
 * (n, several prompts), token-id prompts, echo, suffix (fill in the middle), cached_tokens, and the
 * /tokenize and /detokenize endpoints that clients use to count tokens.
 */
import { describe, expect, it } from 'vitest';
import { TINY_SCRIPT_TEXT, TINY_SCRIPT_TOKENS } from '../src/demo-model/demo-model.js';
import { useClientServer } from './helpers/client.js';
import { scrape, value } from './helpers/prom.js';
import { postJson } from './helpers/server.js';

const MODEL = 'surface-test';
const ctx = useClientServer(MODEL);
const messages = [{ role: 'user' as const, content: 'Hello there' }];
const post = (path: string, body: unknown) => postJson(`${ctx.server.url}${path}`, body);

describe('several choices', () => {
  it('chat n=3: three indexed choices; usage counts the prompt once', async () => {
    const one = await ctx.client.chat.completions.create({ model: MODEL, messages, temperature: 0 });
    const res = await ctx.client.chat.completions.create({ model: MODEL, messages, temperature: 0, n: 3 });
    expect(res.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    for (const c of res.choices) expect(c.message.content).toBe(TINY_SCRIPT_TEXT);
    expect(res.usage!.prompt_tokens).toBe(one.usage!.prompt_tokens);
    expect(res.usage!.completion_tokens).toBe(3 * TINY_SCRIPT_TOKENS);
  });

  it('streamed n=2: every chunk names its choice, each reassembles to the answer and finishes once', async () => {
    const stream = await ctx.client.chat.completions.create({
      model: MODEL,
      messages,
      temperature: 0,
      n: 2,
      stream: true,
      stream_options: { include_usage: true },
    });
    const text = ['', ''];
    const finishes = [0, 0];
    let usage: unknown;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text[c.index] += c.delta.content ?? '';
        if (c.finish_reason) finishes[c.index]!++;
      }
    }
    expect(text).toEqual([TINY_SCRIPT_TEXT, TINY_SCRIPT_TEXT]);
    expect(finishes).toEqual([1, 1]);
    expect(usage).toMatchObject({ completion_tokens: 2 * TINY_SCRIPT_TOKENS });
  });

  it('with a seed, the choices sample with different seeds (seed + index)', async () => {
    const format = { type: 'json_schema' as const, json_schema: { name: 's', schema: { type: 'string', maxLength: 12 } } };
    const params = { model: MODEL, messages, response_format: format, temperature: 1, seed: 3, n: 3 };
    const res = await ctx.client.chat.completions.create(params);
    const again = await ctx.client.chat.completions.create(params);
    const answers = res.choices.map((c) => c.message.content);
    expect(again.choices.map((c) => c.message.content)).toEqual(answers);
    expect(new Set(answers).size).toBeGreaterThan(1);
  });

  it('completions: several prompts × n, in prompt order', async () => {
    const res = await ctx.client.completions.create({ model: MODEL, prompt: ['a', 'bb b'], n: 2, temperature: 0, max_tokens: 3 });
    expect(res.choices.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    const single = await Promise.all(
      ['a', 'bb b'].map((prompt) => ctx.client.completions.create({ model: MODEL, prompt, max_tokens: 3, temperature: 0 })),
    );
    expect(res.usage!.prompt_tokens).toBe(single[0]!.usage!.prompt_tokens + single[1]!.usage!.prompt_tokens);
    expect(res.usage!.completion_tokens).toBe(4 * 3);
  });
});

describe('prompts', () => {
  it('token ids give what the same text gives', async () => {
    const { body } = await post('/tokenize', { content: 'Say hi' });
    const byText = await ctx.client.completions.create({ model: MODEL, prompt: 'Say hi', temperature: 0, max_tokens: 5 });
    const byIds = await ctx.client.completions.create({ model: MODEL, prompt: body.tokens as number[], temperature: 0, max_tokens: 5 });
    expect(byIds.choices[0]!.text).toBe(byText.choices[0]!.text);
    expect(byIds.usage!.prompt_tokens).toBe(byText.usage!.prompt_tokens);
    const two = await ctx.client.completions.create({
      model: MODEL,
      prompt: [body.tokens as number[], [1, 2]],
      temperature: 0,
      max_tokens: 2,
    });
    expect(two.choices).toHaveLength(2);
  });

  it('token ids beyond the vocabulary are a 400 naming prompt', async () => {
    const res = await post('/v1/completions', { prompt: [1, 999_999] });
    expect([res.status, res.body.error.param]).toEqual([400, 'prompt']);
    expect(res.body.error.message).toContain('999999');
  });

  it('echo puts the prompt before the answer, streamed too', async () => {
    const res = await ctx.client.completions.create({ model: MODEL, prompt: 'Echo me', echo: true, temperature: 0, max_tokens: 50 });
    expect(res.choices[0]!.text).toBe(`Echo me${TINY_SCRIPT_TEXT}`);
    const hi = (await post('/tokenize', { content: 'hi' })).body.tokens as number[];
    let streamed = '';
    for await (const chunk of await ctx.client.completions.create({
      model: MODEL,
      prompt: hi,
      echo: true,
      temperature: 0,
      max_tokens: 50,
      stream: true,
    })) {
      streamed += chunk.choices[0]?.text ?? '';
    }
    expect(streamed).toBe(`hi${TINY_SCRIPT_TEXT}`);
  });

  it('suffix fills in the middle with the FIM tokens', async () => {
    const plain = await ctx.client.completions.create({ model: MODEL, prompt: 'def f(', temperature: 0, max_tokens: 3 });
    const fim = await ctx.client.completions.create({ model: MODEL, prompt: 'def f(', suffix: '):', temperature: 0, max_tokens: 3 });
    const suffixTokens = (await post('/tokenize', { content: '):' })).body.count as number;
    // <|fim_prefix|> prompt <|fim_suffix|> suffix <|fim_middle|>
    expect(fim.usage!.prompt_tokens).toBe(plain.usage!.prompt_tokens + suffixTokens + 3);
  });
});

describe('usage', () => {
  it('prompt_tokens_details.cached_tokens: the prefix reused from the KV cache', async () => {
    const long = [{ role: 'user' as const, content: 'A long question about caching. '.repeat(8) }];
    const first = await ctx.client.chat.completions.create({ model: MODEL, messages: long, temperature: 0 });
    const second = await ctx.client.chat.completions.create({ model: MODEL, messages: long, temperature: 0 });
    expect(first.usage!.prompt_tokens_details!.cached_tokens).toBeLessThan(first.usage!.prompt_tokens);
    // All but the last prompt token (evaluated again for its logits) come from the cache.
    expect(second.usage!.prompt_tokens_details!.cached_tokens).toBe(second.usage!.prompt_tokens - 1);
  });
});

describe('/tokenize and /detokenize', () => {
  it('round-trips text, in llama.cpp and vLLM shapes', async () => {
    const text = 'Héllo, <|im_start|> 你好';
    const llama = await post('/tokenize', { content: text, with_pieces: true });
    expect(llama.status).toBe(200);
    const ids = (llama.body.tokens as { id: number; piece: string }[]).map((t) => t.id);
    const vllm = await post('/tokenize', { prompt: text });
    expect(vllm.body.tokens).toEqual(ids);
    expect(vllm.body.count).toBe(ids.length);
    expect(vllm.body.max_model_len).toBe(2048);
    const back = await post('/detokenize', { tokens: ids });
    expect(back.body).toEqual({ content: text, prompt: text });
  });

  it('special-token text is one token unless parse_special is false', async () => {
    const special = await post('/tokenize', { content: '<|im_start|>' });
    const literal = await post('/tokenize', { content: '<|im_start|>', parse_special: false });
    expect(special.body.count).toBe(1);
    expect(literal.body.count).toBeGreaterThan(1);
  });

  it('messages count exactly the prompt_tokens of a chat completion', async () => {
    const res = await ctx.client.chat.completions.create({ model: MODEL, messages, temperature: 0, max_tokens: 1 });
    const counted = await post('/tokenize', { messages });
    expect(counted.body.count).toBe(res.usage!.prompt_tokens);
  });

  it('bad input is a 400 naming the field', async () => {
    const cases: [string, unknown, string][] = [
      ['/tokenize', {}, 'content'],
      ['/tokenize', { content: 5 }, 'content'],
      ['/tokenize', { messages: [{ role: 'wizard', content: 'x' }] }, 'messages.0.role'],
      ['/detokenize', { tokens: 'abc' }, 'tokens'],
      ['/detokenize', { tokens: [1, 10_000_000] }, 'tokens'],
    ];
    for (const [path, body, param] of cases) {
      const res = await post(path, body);
      expect([res.status, res.body.error?.param], `${path} ${JSON.stringify(body)}`).toEqual([400, param]);
    }
  });

  it('are counted under their own endpoint label', async () => {
    const read = async () =>
      value(await scrape(ctx.server.metricsUrl ?? ctx.server.url), 'qwen_inference_request_total', { endpoint: '/tokenize' });
    const before = await read();
    await post('/tokenize', { content: 'x' });
    await post('/tokenize', { content: 'y' });
    expect((await read()) - before).toBe(2);
  });
});
