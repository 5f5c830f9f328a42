/**
 * A multi-byte character whose bytes the model emits as separate tokens arrives intact: no chunk of
 * the stream carries U+FFFD or half a character.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { getLlama, type Token } from 'node-llama-cpp';
import { inject } from 'vitest';
import { TINY_SCRIPT_TEXT, TINY_SCRIPT_TOKEN_IDS } from '../src/demo-model/demo-model.js';
import { readSse, startServer, type TestServer } from './helpers/server.js';

let server: TestServer;

beforeAll(async () => {
  server = await startServer();
});

afterAll(async () => {
  await server.stop();
});

it('the script really splits "你" and "。" across tokens', async () => {
  const llama = await getLlama({ gpu: false, maxThreads: 1, build: 'never' });
  const model = await llama.loadModel({ modelPath: inject('tinyModel') });
  const pieces = TINY_SCRIPT_TOKEN_IDS.map((id) => model.detokenize([id as Token]));
  // At least two tokens are not valid UTF-8 on their own.
  expect(pieces.filter((p) => p.includes('\uFFFD')).length).toBeGreaterThanOrEqual(2);
  expect(model.detokenize(TINY_SCRIPT_TOKEN_IDS as Token[])).toBe(TINY_SCRIPT_TEXT);
  await model.dispose();
});

it('every streamed chunk is whole text and together they are the script', async () => {
  for (const endpoint of ['completions', 'chat/completions']) {
    const body =
      endpoint === 'completions'
        ? { prompt: 'x', max_tokens: 50, temperature: 0, stream: true }
        : { messages: [{ role: 'user', content: '你好' }], temperature: 0, stream: true };
    const res = await fetch(`${server.url}/v1/${endpoint}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const events = (await readSse(res)).filter((e) => typeof e === 'object') as any[];
    const pieces = events.map((e) => (endpoint === 'completions' ? e.choices[0]?.text : e.choices[0]?.delta?.content) ?? '');
    for (const p of pieces) expect(p).not.toContain('\uFFFD');
    expect(pieces.join('')).toBe(TINY_SCRIPT_TEXT);
    expect(pieces.join('')).toContain('你好');
  }
});
