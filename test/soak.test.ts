/**
 * The soak tool against a real server: about a minute, 16 clients, 10% abandoned streams, 5% bad requests;
 * it must find zero loss and zero mismatch between its tally and the server's /metrics. And the tool's
 * comparison itself must catch a mismatch.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExposition } from '../src/metrics/exposition-parser.js';
import { compare, Tally } from '../src/tools/soak/tally.js';
import { startServer, type TestServer } from './helpers/server.js';

const SOAK = path.resolve('dist/src/tools/soak/main.js');

describe('soak', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(['--workers', '2', '--sequences', '4']);
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
  });

  it('a one-minute soak loses nothing and every counter matches', { timeout: 180_000 }, async () => {
    const served = ((await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string }[] }).data[0]!.id;
    const proc = spawn(
      process.execPath,
      [SOAK, '--url', server.url, '--served-model', served, '--duration', '60', '--concurrency', '16', '--disconnect-rate', '0.1'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
    console.log(out);
    expect(out).toContain('metrics match the client tally: nothing lost');
    expect(out).toContain('unexpected errors: 0');
    expect(out).toContain('soak: PASS');
    expect(out).toContain(`requests to ${served} in`);
    expect(code).toBe(0);
    const abandoned = /"abort":(\d+)/.exec(out);
    expect(Number(abandoned?.[1])).toBeGreaterThan(0);
    expect(server.proc.exitCode).toBeNull();
  });
});

describe("the soak tool's comparison", () => {
  const exposition = (requests: number, stop: number, tokens: number) =>
    parseExposition(
      [
        `qwen_inference_request_total{method="POST",endpoint="/v1/completions"} ${requests}`,
        `qwen_requests_finished_total{model="m",finish_reason="stop"} ${stop}`,
        `qwen_prompt_tokens_total{model="m"} ${tokens}`,
        `qwen_generation_tokens_total{model="m"} ${tokens}`,
        `qwen_request_generation_tokens_sum{model="m"} ${tokens}`,
      ].join('\n'),
    );

  it('reports no difference when the server agrees', () => {
    const t = new Tally();
    t.requests.completions = 3;
    t.finished.stop = 3;
    t.promptTokens = 30;
    t.completionTokens = 30;
    expect(compare(t, exposition(0, 0, 0), exposition(3, 3, 30), 'm')).toEqual([]);
  });

  it('reports a lost request, a wrong finish reason and missing tokens', () => {
    const t = new Tally();
    t.requests.completions = 4;
    t.finished.stop = 4;
    t.promptTokens = 40;
    t.completionTokens = 40;
    const diffs = compare(t, exposition(0, 0, 0), exposition(3, 3, 30), 'm').map((d) => d.what);
    expect(diffs).toEqual(expect.arrayContaining(['requests /v1/completions', 'finish_reason=stop', 'prompt tokens', 'generation tokens']));
  });

  it("compares the soaked model's counters only (--served-model); invalid requests over every model", () => {
    const t = new Tally();
    t.requests.completions = 4;
    t.finished.stop = 3;
    t.rejected.invalid = 1;
    t.promptTokens = 30;
    t.completionTokens = 30;
    // Another model of the server, busy between the scrapes, and the unparsable body (counted under whichever
    // model the server attributes it to).
    const other = (n: number, invalid: number) =>
      parseExposition(
        [
          `qwen_requests_finished_total{model="other",finish_reason="stop"} ${n}`,
          `qwen_prompt_tokens_total{model="other"} ${n * 7}`,
          `qwen_generation_tokens_total{model="other"} ${n * 7}`,
          `qwen_request_generation_tokens_sum{model="other"} ${n * 7}`,
          `qwen_requests_running{model="other"} ${n}`,
          `qwen_requests_rejected_total{model="other",reason="invalid"} ${invalid}`,
        ].join('\n'),
      );
    const before = [...exposition(0, 0, 0), ...other(0, 0)];
    const after = [...exposition(4, 3, 30), ...other(50, 1)];
    expect(compare(t, before, after, 'm')).toEqual([]);
    // The same scrapes read for the other model disagree with the client.
    expect(compare(t, before, after, 'other').map((d) => d.what)).toEqual(
      expect.arrayContaining(['finish_reason=stop', 'prompt tokens', 'generation tokens', 'requests still running']),
    );
  });
});
