/**
 * No request can stall the others, and every bound is a 4xx naming its field and flag (README, "Limits"):
 * hostile inputs that used to freeze the main thread or a worker for minutes are served (or refused) while
 * other clients are answered; budgets and schema limits refuse what is over them and cap what has no
 * explicit size. Behaviour only: no assertion here reads a clock.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TINY_SCRIPT_TEXT } from '../src/demo-model/demo-model.js';
import { AGENT_TOOLS } from '../src/tools/bench/agent-tools.js';
import { postJson, startServer, type TestServer } from './helpers/server.js';
import { scrape } from './helpers/prom.js';

const chat = (s: TestServer, body: object) =>
  postJson(`${s.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'hi' }], ...body });

function expect400(res: { status: number; body: any }, code: string, param: string, flag?: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(400);
  expect(res.body.error.code).toBe(code);
  expect(res.body.error.param).toBe(param);
  if (flag) expect(res.body.error.message).toContain(flag);
}

describe('hostile inputs, default limits', () => {
  let server: TestServer;
  beforeAll(async () => {
    // The agent tool set renders to ~4k tokens with the tiny model's byte-level vocabulary.
    server = await startServer(['--sequences', '4', '--context-size', '8192']);
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
  });

  /** Runs `heavy` while other clients poll /health and ask for a plain chat; all of them must be answered. */
  async function alongside<T>(heavy: Promise<T>): Promise<T> {
    let done = false;
    const polls: number[] = [];
    const poller = (async () => {
      while (!done) polls.push((await fetch(`${server.url}/health`)).status);
    })();
    const plain = chat(server, { max_tokens: 10, temperature: 0 });
    const result = await heavy;
    done = true;
    await poller;
    const other = await plain;
    expect(other.status).toBe(200);
    expect(other.body.choices[0].message.content).toBe(TINY_SCRIPT_TEXT);
    expect(polls.length).toBeGreaterThan(0);
    expect(polls.every((s) => s === 200)).toBe(true);
    return result;
  }

  it('/tokenize with 80k special tokens (960 KB) is answered, and so is everyone else', async () => {
    const prepared = async (lane: string) =>
      (await scrape(server.url)).find(
        (x) => x.name === 'qwen_request_prepare_seconds_count' && x.labels.lane === lane && x.labels.op === 'tokenize',
      )?.value ?? 0;
    const before = await prepared('heavy');
    const res = await alongside(postJson(`${server.url}/tokenize`, { content: '<|im_start|>'.repeat(80_000) }));
    expect(res.status).toBe(200);
    expect(res.body.count).toBe(80_000);
    // A body this large is prepared in the heavy lane, where it holds up no small request.
    expect(await prepared('heavy')).toBe(before + 1);
  });

  it('/tokenize with_pieces on a large text answers every piece', async () => {
    const text = 'Hello, world! '.repeat(20_000);
    const res = await alongside(postJson(`${server.url}/tokenize`, { content: text, with_pieces: true }));
    expect(res.status).toBe(200);
    expect(res.body.tokens.length).toBe(res.body.count);
    expect(res.body.tokens.map((t: { piece: string }) => t.piece).join('')).toBe(text);
  });

  it('a chat message made of 20k <tool_call> texts is a 400 for the context, not a stall', async () => {
    const res = await alongside(chat(server, { messages: [{ role: 'user', content: '<tool_call>'.repeat(20_000) }], max_tokens: 4 }));
    expect400(res, 'context_length_exceeded', 'messages');
    // Refused on its length alone (at most one token per longest-token bytes), without being tokenized.
    expect(res.body.error.message).toContain('at least');
  });

  it('a response_format enum of 5000 values is enforced, beside a plain request', async () => {
    const values = Array.from({ length: 5000 }, (_, i) => `value-${i}`);
    const schema = { type: 'object', properties: { v: { enum: values } }, required: ['v'] };
    const res = await alongside(
      chat(server, {
        max_tokens: 40,
        seed: 3,
        response_format: { type: 'json_schema', json_schema: { name: 'pick', schema, strict: true } },
      }),
    );
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(values).toContain(JSON.parse(res.body.choices[0].message.content).v);
  });

  it('the same tools twice: composed once, then from the grammar cache', async () => {
    const count = async (result: string) =>
      (await scrape(server.url)).find((s) => s.name === 'qwen_grammar_cache_requests_total' && s.labels.result === result)?.value ?? 0;
    const [hits, misses] = [await count('hit'), await count('miss')];
    for (let i = 0; i < 2; i++) {
      const res = await chat(server, { max_tokens: 8, tools: AGENT_TOOLS, tool_choice: 'required' });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
    }
    expect(await count('miss')).toBe(misses + 1);
    expect(await count('hit')).toBe(hits + 1);
  });
});

describe('budgets and schema limits as flags', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer([
      '--max-request-tokens',
      '40',
      '--max-request-logprobs',
      '300',
      '--max-enum-values',
      '50',
      '--max-schema-alternatives',
      '4',
      '--max-schema-bytes',
      '65536',
      '--max-grammar-rules',
      '100',
    ]);
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
  });

  it('n × max_tokens over --max-request-tokens is a 400 naming max_tokens', async () => {
    expect400(await chat(server, { n: 4, max_tokens: 20 }), 'request_too_large', 'max_tokens', '--max-request-tokens');
    expect400(
      await postJson(`${server.url}/v1/completions`, { prompt: 'x', max_tokens: 41 }),
      'request_too_large',
      'max_tokens',
      '--max-request-tokens',
    );
  });

  it('without max_tokens each choice gets its share of the budget', async () => {
    const res = await chat(server, { n: 2, ignore_eos: true, temperature: 0 });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    for (const c of res.body.choices) expect(c.finish_reason).toBe('length');
    expect(res.body.usage.completion_tokens).toBe(40);
  });

  it('logprobs over --max-request-logprobs is a 400 naming top_logprobs; without max_tokens they are capped', async () => {
    expect400(
      await chat(server, { logprobs: true, top_logprobs: 9, max_tokens: 35 }),
      'request_too_large',
      'top_logprobs',
      '--max-request-logprobs',
    );
    const res = await chat(server, { logprobs: true, top_logprobs: 9, ignore_eos: true });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    // 300 / (1 + 9) = 30 tokens at most.
    expect(res.body.choices[0].logprobs.content.length).toBe(30);
  });

  it('schema limits name the keyword and the flag', async () => {
    const format = (schema: object) => ({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema } } });
    const values = Array.from({ length: 51 }, (_, i) => `v${i}`);
    expect400(
      await chat(server, format({ type: 'object', properties: { v: { enum: values } } })),
      'schema_too_large',
      'response_format.json_schema.schema.properties.v.enum',
      '--max-enum-values',
    );
    const alternatives = { anyOf: [{ type: 'string' }, { type: 'integer' }, { type: 'boolean' }, { type: 'null' }, { type: 'number' }] };
    expect400(
      await chat(server, format({ type: 'object', properties: { a: alternatives } })),
      'schema_too_large',
      'response_format.json_schema.schema.properties.a.anyOf',
      '--max-schema-alternatives',
    );
    expect400(
      await chat(server, format({ type: 'string', minLength: 5000 })),
      'invalid_schema',
      'response_format.json_schema.schema.minLength',
    );
  });

  it('tools over --max-schema-bytes or --max-grammar-rules are a 400 naming tools', async () => {
    expect400(await chat(server, { tools: AGENT_TOOLS, tool_choice: 'required' }), 'grammar_too_large', 'tools', '--max-grammar-rules');
    const big = {
      type: 'object',
      properties: Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`property_${i}`, { type: 'string' }])),
    };
    const tools = [{ type: 'function', function: { name: 'f', parameters: big } }];
    expect400(await chat(server, { tools }), 'schema_too_large', 'tools.0.function.parameters', '--max-schema-bytes');
  });

  it('the Responses API names its own field for a schema', async () => {
    const values = Array.from({ length: 51 }, (_, i) => `v${i}`);
    const res = await postJson(`${server.url}/v1/responses`, {
      input: 'hi',
      text: { format: { type: 'json_schema', name: 'x', schema: { type: 'object', properties: { v: { enum: values } } } } },
    });
    expect400(res, 'schema_too_large', 'text.format.schema.properties.v.enum', '--max-enum-values');
  });
});
