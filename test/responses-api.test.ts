/**
 * The Responses API (POST /v1/responses) through the official client: text, streamed events, function
 * calls and their outputs in the input, text.format json_schema, 400s that name the Responses API's own
 * fields, and metrics under its own endpoint label.
 */
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { TINY_SCRIPT_TEXT, TINY_SCRIPT_TOKENS } from '../src/demo-model/demo-model.js';
import { useClientServer } from './helpers/client.js';
import { scrape, value } from './helpers/prom.js';
import { postJson } from './helpers/server.js';

const MODEL = 'responses-test';
const ctx = useClientServer(MODEL);
const tool = {
  type: 'function' as const,
  name: 'lookup',
  description: 'Look something up',
  parameters: {
    type: 'object',
    properties: { query: { type: 'string', maxLength: 10 } },
    required: ['query'],
    additionalProperties: false,
  },
  strict: true,
};

describe('POST /v1/responses', () => {
  it('answers with a message whose output_text is the answer, and usage', async () => {
    const r = await ctx.client.responses.create({ model: MODEL, input: 'Hi', instructions: 'Be brief.', temperature: 0 });
    expect(r.object).toBe('response');
    expect(r.id).toMatch(/^resp_/);
    expect(r.status).toBe('completed');
    expect(r.output_text).toBe(TINY_SCRIPT_TEXT);
    expect(r.usage!.output_tokens).toBe(TINY_SCRIPT_TOKENS);
    expect(r.usage!.total_tokens).toBe(r.usage!.input_tokens + TINY_SCRIPT_TOKENS);
  });

  it('max_output_tokens cuts the answer: status incomplete', async () => {
    const r = await ctx.client.responses.create({ model: MODEL, input: 'Hi', temperature: 0, max_output_tokens: 2 });
    expect(r.status).toBe('incomplete');
    expect(r.incomplete_details).toEqual({ reason: 'max_output_tokens' });
    expect(r.usage!.output_tokens).toBe(2);
  });

  it('streams typed events in order; the deltas add up to the answer', async () => {
    const stream = await ctx.client.responses.create({ model: MODEL, input: 'Hi', temperature: 0, stream: true });
    const types: string[] = [];
    let text = '';
    let sequence = -1;
    for await (const e of stream) {
      types.push(e.type);
      expect(e.sequence_number).toBe(sequence + 1);
      sequence = e.sequence_number;
      if (e.type === 'response.output_text.delta') text += e.delta;
      if (e.type === 'response.completed')
        expect(e.response.output[0]).toMatchObject({ type: 'message', content: [{ text: TINY_SCRIPT_TEXT }] });
    }
    expect(text).toBe(TINY_SCRIPT_TEXT);
    const distinct = types.filter((t, i) => t !== types[i - 1]);
    expect(distinct).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
  });

  it('a required function call, streamed or not, through the stream helper too', async () => {
    const params = {
      model: MODEL,
      input: 'Look up cats',
      temperature: 0,
      tools: [tool],
      tool_choice: 'required' as const,
      parallel_tool_calls: false,
    };
    const r = await ctx.client.responses.create(params);
    const call = r.output.find((o) => o.type === 'function_call');
    expect(call?.type === 'function_call' && call.name).toBe('lookup');
    const args: unknown = JSON.parse(call?.type === 'function_call' ? call.arguments : '');
    const validate = new Ajv().compile(tool.parameters);
    expect(validate(args)).toBe(true);
    const final = await ctx.client.responses.stream(params).finalResponse();
    const streamed = final.output.find((o) => o.type === 'function_call');
    expect(streamed?.type === 'function_call' && streamed.arguments).toBe(call?.type === 'function_call' && call.arguments);
  });

  it('function_call and function_call_output items in the input are the conversation', async () => {
    const input = [
      { role: 'user' as const, content: 'Look up cats' },
      { type: 'function_call' as const, call_id: 'c1', name: 'lookup', arguments: '{"query":"cats"}' },
      { type: 'function_call_output' as const, call_id: 'c1', output: 'Cats are mammals.' },
    ];
    const r = await ctx.client.responses.create({ model: MODEL, input, tools: [tool], temperature: 0 });
    expect(r.output_text).toBe(TINY_SCRIPT_TEXT);
    const longer = await ctx.client.responses.create({
      model: MODEL,
      input: [...input.slice(0, 2), { ...input[2]!, output: 'Cats are mammals. '.repeat(10) }] as never,
      tools: [tool],
      temperature: 0,
    });
    expect(longer.usage!.input_tokens).toBeGreaterThan(r.usage!.input_tokens + 10);
  });

  it('text.format json_schema: the output parses and validates', async () => {
    const schema = {
      type: 'object',
      properties: { ok: { type: 'boolean' }, n: { type: 'integer' } },
      required: ['ok', 'n'],
      additionalProperties: false,
    };
    const r = await ctx.client.responses.create({
      model: MODEL,
      input: 'JSON please',
      temperature: 0,
      text: { format: { type: 'json_schema', name: 'x', schema, strict: true } },
    });
    expect(new Ajv().compile(schema)(JSON.parse(r.output_text))).toBe(true);
  });

  it('what it cannot serve, and bad fields, are 400s naming the field', async () => {
    const cases: [object, string][] = [
      [{ input: 'x', previous_response_id: 'resp_1' }, 'previous_response_id'],
      [{ input: [{ type: 'input_image', image_url: 'x' }] }, 'input'],
      [{ input: 'x', tools: [{ type: 'web_search' }] }, 'tools.0.type'],
      [
        { input: 'x', tools: [{ ...tool, parameters: { type: 'object', properties: { a: { type: 'nope' } } } }] },
        'tools.0.parameters.properties.a.type',
      ],
      [
        { input: 'x', text: { format: { type: 'json_schema', name: 'x', strict: true, schema: { type: 'string', pattern: 'a' } } } },
        'text.format.schema.pattern',
      ],
      [{ input: 'x', tools: [tool], tool_choice: { type: 'function', name: 'other' } }, 'tool_choice.name'],
      [{ input: [{ type: 'function_call_output', call_id: 'zz', output: 'x' }] }, 'input.0.call_id'],
      [{ input: 'x', temperature: 'warm' }, 'temperature'],
      [{}, 'input'],
    ];
    for (const [body, param] of cases) {
      const res = await postJson(`${ctx.server.url}/v1/responses`, body);
      expect([res.status, res.body.error?.param], JSON.stringify(body)).toEqual([400, param]);
    }
  });

  it('is counted under its own endpoint label', async () => {
    const read = async (name: string, labels: Record<string, string>) =>
      value(await scrape(ctx.server.metricsUrl ?? ctx.server.url), name, labels);
    const before = await read('qwen_inference_request_total', { endpoint: '/v1/responses' });
    const tools = await read('qwen_feature_requests_total', { endpoint: '/v1/responses', feature: 'tools_forced' });
    await ctx.client.responses.create({ model: MODEL, input: 'Hi', temperature: 0 });
    await ctx.client.responses.create({ model: MODEL, input: 'Hi', tools: [tool], tool_choice: 'required', temperature: 0 });
    expect((await read('qwen_inference_request_total', { endpoint: '/v1/responses' })) - before).toBe(2);
    expect((await read('qwen_feature_requests_total', { endpoint: '/v1/responses', feature: 'tools_forced' })) - tools).toBe(1);
  });
});
