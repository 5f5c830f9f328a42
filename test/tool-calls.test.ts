/**
 * Tool calls through the official client against a real server on the tiny model. The demo model cannot
 * choose a tool well; these tests check the protocol: a grammar-forced call has an allowed name and
 * arguments that validate against the function's schema, streamed deltas reassemble (also through the
 * client's own stream helper) to the non-streamed answer, and history with calls and results is accepted.
 * In a free answer (tool_choice auto) a logit_bias on `<tool_call>` makes the model start a call.
 */
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import type { ChatCompletionCreateParamsNonStreaming, ChatCompletionTool } from 'openai/resources/chat/completions';
import { describe, expect, it } from 'vitest';
import { TINY_SCRIPT_TEXT, TINY_STEERING_IDS } from '../src/demo-model/demo-model.js';
import { scrape, value } from './helpers/prom.js';
import { useClientServer } from './helpers/client.js';
import { postJson } from './helpers/server.js';

const MODEL = 'tools-test';
const ctx = useClientServer(MODEL);

const weather: ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather of a city',
    parameters: {
      type: 'object',
      properties: {
        city: { type: 'string', maxLength: 12 },
        unit: { enum: ['celsius', 'fahrenheit'] },
        days: { type: 'integer' },
      },
      required: ['city'],
      additionalProperties: false,
    },
  },
};
const time: ChatCompletionTool = {
  type: 'function',
  function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string', maxLength: 6 } } } },
};
const tools = [weather, time];
const ajv = new Ajv();
const validators = new Map(tools.map((t) => [t.function.name, ajv.compile(t.function.parameters!)]));

/** A tool call with a known name whose arguments validate against that tool's schema. */
function expectValidCall(call: { type: string; id: string; function: { name: string; arguments: string } }) {
  expect(call.type).toBe('function');
  expect(call.id).toMatch(/^call_[A-Za-z0-9_-]{24}$/);
  const validate = validators.get(call.function.name);
  expect(validate, call.function.name).toBeDefined();
  const args: unknown = JSON.parse(call.function.arguments);
  expect(validate!(args), JSON.stringify(validate!.errors)).toBe(true);
}

const base = {
  model: MODEL,
  messages: [{ role: 'user' as const, content: 'What is the weather in Paris?' }],
  tools,
  temperature: 0,
  max_tokens: 300,
};
/** Makes the tiny model start a call in a free answer (it would otherwise say its script). */
const startCall = { logit_bias: { [TINY_STEERING_IDS.toolCall]: 100 } };

/** The calls of a streamed answer, reassembled by index as the OpenAI docs describe. */
async function streamedCalls(params: ChatCompletionCreateParamsNonStreaming) {
  const stream = await ctx.client.chat.completions.create({ ...params, stream: true });
  const calls: { id: string; type: string; function: { name: string; arguments: string } }[] = [];
  let content = '';
  let finish: string | null = null;
  for await (const chunk of stream) {
    const choice = chunk.choices[0]!;
    content += choice.delta.content ?? '';
    for (const d of choice.delta.tool_calls ?? []) {
      if (d.id !== undefined) calls[d.index] = { id: d.id, type: d.type!, function: { name: d.function!.name!, arguments: '' } };
      calls[d.index]!.function.arguments += d.function?.arguments ?? '';
    }
    finish = choice.finish_reason ?? finish;
  }
  return { calls, content, finish };
}

const withoutIds = (calls: { function: { name: string; arguments: string } }[]) => calls.map((c) => c.function);

describe('forced calls (tool_choice required / a named function)', () => {
  it('required: one call of a listed tool, arguments valid for its schema, finish_reason tool_calls', async () => {
    const res = await ctx.client.chat.completions.create({ ...base, tool_choice: 'required', parallel_tool_calls: false });
    const choice = res.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toHaveLength(1);
    expectValidCall(choice.message.tool_calls![0] as never);
  });

  it('a named function: the call is to that function', async () => {
    const res = await ctx.client.chat.completions.create({ ...base, tool_choice: { type: 'function', function: { name: 'get_time' } } });
    const call = res.choices[0]!.message.tool_calls![0]!;
    expect(call.type === 'function' && call.function.name).toBe('get_time');
    expectValidCall(call as never);
  });

  it('streamed deltas reassemble to the non-streamed call', async () => {
    const params = { ...base, tool_choice: 'required' as const, parallel_tool_calls: false };
    const whole = await ctx.client.chat.completions.create(params);
    const streamed = await streamedCalls(params);
    expect(streamed.finish).toBe('tool_calls');
    expect(streamed.content).toBe('');
    expect(withoutIds(streamed.calls)).toEqual(withoutIds(whole.choices[0]!.message.tool_calls as never));
    streamed.calls.forEach(expectValidCall);
  });

  it("the client's stream helper assembles the same message", async () => {
    const params = { ...base, tool_choice: 'required' as const, parallel_tool_calls: false };
    const whole = await ctx.client.chat.completions.create(params);
    const final = await ctx.client.chat.completions.stream(params).finalChatCompletion();
    expect(final.choices[0]!.finish_reason).toBe('tool_calls');
    expect(withoutIds(final.choices[0]!.message.tool_calls as never)).toEqual(withoutIds(whole.choices[0]!.message.tool_calls as never));
  });

  it('stop strings do not cut a call (they apply to answer text only)', async () => {
    const res = await ctx.client.chat.completions.create({
      ...base,
      tool_choice: 'required',
      parallel_tool_calls: false,
      stop: ['"', '{'],
    });
    expect(res.choices[0]!.finish_reason).toBe('tool_calls');
    expectValidCall(res.choices[0]!.message.tool_calls![0] as never);
  });
});

describe('free answers (tool_choice auto)', () => {
  it('without a call the answer is text, and stop strings apply to it', async () => {
    const res = await ctx.client.chat.completions.create(base);
    expect(res.choices[0]!.message.content).toBe(TINY_SCRIPT_TEXT);
    expect(res.choices[0]!.message.tool_calls).toBeUndefined();
    expect(res.choices[0]!.finish_reason).toBe('stop');
    const cut = await ctx.client.chat.completions.create({ ...base, stop: ['world'] });
    expect(cut.choices[0]!.message.content).toBe('Hello, ');
    expect(cut.choices[0]!.finish_reason).toBe('stop');
  });

  it('a call the model starts is parsed and completed by the grammar', async () => {
    const res = await ctx.client.chat.completions.create({ ...base, ...startCall, parallel_tool_calls: false } as never);
    const choice = (res as OpenAI.ChatCompletion).choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toHaveLength(1);
    expectValidCall(choice.message.tool_calls![0] as never);
    // Nothing of the call's syntax leaks into the answer.
    const streamed = await streamedCalls({ ...base, ...startCall, parallel_tool_calls: false });
    expect(streamed.content).toBe('');
    expect(withoutIds(streamed.calls)).toEqual(withoutIds(choice.message.tool_calls as never));
  });

  it('parallel_tool_calls: several calls when allowed, exactly one when not', async () => {
    // A newline between two calls is what the template writes; biasing it makes the model go on.
    const more = { logit_bias: { [TINY_STEERING_IDS.toolCall]: 100, [TINY_STEERING_IDS.newline]: 50 } };
    const parallel = await postJson(`${ctx.server.url}/v1/chat/completions`, { ...base, ...more, max_tokens: 250 });
    const calls = parallel.body.choices[0].message.tool_calls as { function: { name: string; arguments: string } }[];
    expect(calls.length).toBeGreaterThanOrEqual(2);
    // The last call may be cut by max_tokens; every finished one is valid.
    calls.slice(0, -1).forEach((c) => expectValidCall(c as never));
    const single = await postJson(`${ctx.server.url}/v1/chat/completions`, { ...base, ...more, parallel_tool_calls: false });
    expect(single.body.choices[0].message.tool_calls).toHaveLength(1);
    expect(single.body.choices[0].finish_reason).toBe('tool_calls');
  });

  it('tool_choice none: the tools are not offered, the answer is text', async () => {
    const res = await postJson(`${ctx.server.url}/v1/chat/completions`, { ...base, ...startCall, tool_choice: 'none', max_tokens: 5 });
    expect(res.status).toBe(200);
    expect(res.body.choices[0].message.tool_calls).toBeUndefined();
    // The biased token is the call marker itself, written as text.
    expect(res.body.choices[0].message.content).toContain('<tool_call>');
  });
});

describe('history with calls and results', () => {
  const history = (result: string) => [
    { role: 'user', content: 'Weather in Paris?' },
    {
      role: 'assistant',
      content: null,
      tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }],
    },
    { role: 'tool', tool_call_id: 'call_1', content: result },
    { role: 'user', content: 'Thanks' },
  ];

  it('is rendered with the chat template: the tool result is part of the prompt', async () => {
    const short = await postJson(`${ctx.server.url}/v1/chat/completions`, { ...base, messages: history('sunny') });
    const long = await postJson(`${ctx.server.url}/v1/chat/completions`, { ...base, messages: history('sunny '.repeat(20)) });
    expect(short.status).toBe(200);
    expect(short.body.choices[0].message.content).toBe(TINY_SCRIPT_TEXT);
    expect(long.body.usage.prompt_tokens).toBeGreaterThan(short.body.usage.prompt_tokens + 10);
  });

  it('a call without a result, a result without a call, and bad arguments are 400s naming the message', async () => {
    const [user, assistant, tool] = history('x');
    const noResult = await postJson(`${ctx.server.url}/v1/chat/completions`, {
      ...base,
      messages: [user, assistant, { role: 'user', content: 'hm' }],
    });
    expect([noResult.status, noResult.body.error.param]).toEqual([400, 'messages.1.tool_calls']);
    const orphan = await postJson(`${ctx.server.url}/v1/chat/completions`, { ...base, messages: [user, tool] });
    expect([orphan.status, orphan.body.error.param]).toEqual([400, 'messages.1.tool_call_id']);
    const badArgs = {
      ...assistant,
      tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{city' } }],
    };
    const bad = await postJson(`${ctx.server.url}/v1/chat/completions`, { ...base, messages: [user, badArgs, tool] });
    expect([bad.status, bad.body.error.param]).toEqual([400, 'messages.1.tool_calls.0.function.arguments']);
  });
});

describe('bad tool definitions are 400s naming the field', () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ['a non-function tool', { tools: [{ type: 'retrieval' }] }, 'tools.0.type'],
    ['a bad name', { tools: [{ type: 'function', function: { name: 'get weather' } }] }, 'tools.0.function.name'],
    ['a duplicate name', { tools: [weather, weather] }, 'tools.1.function.name'],
    [
      'parameters that are not an object schema',
      { tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'string' } } }] },
      'tools.0.function.parameters',
    ],
    [
      'an invalid type in parameters',
      { tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: { type: 'text' } } } } }] },
      'tools.0.function.parameters.properties.a.type',
    ],
    [
      'an unenforceable keyword with strict',
      {
        tools: [
          {
            type: 'function',
            function: { name: 'f', strict: true, parameters: { type: 'object', properties: { a: { type: 'integer', minimum: 1 } } } },
          },
        ],
      },
      'tools.0.function.parameters.properties.a.minimum',
    ],
    ['tool_choice naming an unknown tool', { tool_choice: { type: 'function', function: { name: 'nope' } } }, 'tool_choice.function.name'],
    ['tool_choice required without tools', { tools: undefined, tool_choice: 'required' }, 'tool_choice'],
    ['a bad tool_choice', { tool_choice: 'sometimes' }, 'tool_choice'],
    ['the deprecated functions field', { functions: [{ name: 'f' }] }, 'functions'],
  ];
  it.each(cases)('%s', async (_, extra, param) => {
    const res = await postJson(`${ctx.server.url}/v1/chat/completions`, { ...base, ...extra });
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.error.param).toBe(param);
    expect(res.body.error.message).toContain(param);
  });

  it('a schema that is valid but not enforceable without strict is accepted', async () => {
    const loose = {
      type: 'function',
      function: { name: 'f', parameters: { type: 'object', properties: { a: { type: 'integer', minimum: 1 } } } },
    };
    const res = await postJson(`${ctx.server.url}/v1/chat/completions`, { ...base, tools: [loose], tool_choice: 'required' });
    expect(res.status).toBe(200);
    expect(Number.isInteger(JSON.parse(res.body.choices[0].message.tool_calls[0].function.arguments).a)).toBe(true);
  });
});

describe('metrics', () => {
  it('count requests by feature and the calls returned', async () => {
    const before = await scrape(ctx.server.metricsUrl ?? ctx.server.url);
    const endpoint = '/v1/chat/completions';
    const read = (samples: typeof before, feature: string) =>
      value(samples, 'qwen_feature_requests_total', { model: MODEL, endpoint, feature });
    const forced = await ctx.client.chat.completions.create({ ...base, tool_choice: 'required', parallel_tool_calls: false });
    const free = await ctx.client.chat.completions.create({ ...base, ...startCall, parallel_tool_calls: false } as never);
    const plain = await ctx.client.chat.completions.create(base);
    const returned = [forced, free as OpenAI.ChatCompletion, plain].reduce(
      (n, r) => n + (r.choices[0]!.message.tool_calls?.length ?? 0),
      0,
    );
    const after = await scrape(ctx.server.metricsUrl ?? ctx.server.url);
    expect(read(after, 'tools_forced') - read(before, 'tools_forced')).toBe(1);
    expect(read(after, 'tools') - read(before, 'tools')).toBe(2);
    expect(read(after, 'json_schema') - read(before, 'json_schema')).toBe(0);
    expect(returned).toBe(2);
    const calls = (s: typeof before) => value(s, 'qwen_tool_calls_total', { model: MODEL });
    expect(calls(after) - calls(before)).toBe(returned);
    const finished = (s: typeof before) => value(s, 'qwen_requests_finished_total', { model: MODEL, finish_reason: 'tool_calls' });
    expect(finished(after) - finished(before)).toBe(2);
  });
});
