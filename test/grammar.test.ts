/**
 * Grammars composed in the tokenizer workers: enums as tries match exactly their values (checked with
 * llama.cpp's own grammar matcher), the composer caches by schemas, and its limits name what they bound.
 */
import fc from 'fast-check';
import { getLlama, LlamaLogLevel, resolveChatWrapper, type Llama, type LlamaModel } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { GrammarTooLargeError } from '../src/errors.js';
import type { LlamaLogMessage } from '../src/shared/protocol.js';
import { InvalidSchemaError } from '../src/errors.js';
import { MAX_REPETITION, toGrammarSchema } from '../src/structured/json-schema.js';
import { llamaLogger } from '../workers/llama-log.js';
import { LlamaLogLevel as Level } from 'node-llama-cpp';
import { AGENT_TOOLS } from '../src/tools/bench/agent-tools.js';
import { GrammarComposer } from '../workers/structured/compose.js';
import { trieRules, withEnumTries } from '../workers/structured/enum-trie.js';
import { toolCallSyntax } from '../workers/structured/tool-syntax.js';

let llama: Llama;
let model: LlamaModel;

beforeAll(async () => {
  llama = await getLlama({ gpu: false, maxThreads: 1, build: 'never', logLevel: LlamaLogLevel.disabled });
  model = await llama.loadModel({ modelPath: inject('tinyModel'), vocabOnly: true });
});

afterAll(async () => {
  await model?.dispose();
});

/** llama.cpp's matcher: whether `text` is a complete match of `grammar` (node-llama-cpp's internal test hook). */
async function matches(grammar: string, text: string): Promise<boolean> {
  const g = await llama.createGrammar({ grammar });
  return (g as unknown as { _testText(t: string): boolean })._testText(text);
}

describe('enum tries', () => {
  const word = fc.string({ unit: fc.constantFrom('a', 'b', 'c', 'é', '你', '"', '\\', '\n', ' ', '😀'), maxLength: 6 });

  it('match every value and nothing else', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(word, { minLength: 1, maxLength: 30 }), word, async (values, other) => {
        const grammar = ['root ::= t', ...trieRules(values, 't')].join('\n');
        for (const v of values) expect(await matches(grammar, v), JSON.stringify(v)).toBe(true);
        expect(await matches(grammar, other)).toBe(values.includes(other));
      }),
      { numRuns: 60 },
    );
  });

  it('swap enums for placeholders and back: the grammar accepts the JSON of each value', async () => {
    const values = ['alpha', 'alps', 'al', 3, null, true, 'a"b\\c\n'];
    const { schema, substitute } = withEnumTries({ type: 'object', properties: { v: { enum: values } } }, 'qwen-enum-test');
    const grammar = substitute((await llama.createGrammarForJsonSchema(schema as never)).grammar);
    expect(grammar).not.toContain('qwen-enum-test');
    for (const v of values) expect(await matches(grammar, `{"v": ${JSON.stringify(v)}}\n\n\n\n`)).toBe(true);
    expect(await matches(grammar, '{"v": "alp"}\n\n\n\n')).toBe(false);
  });

  it('a 10k-value enum is a grammar of about one rule per branching point', () => {
    const values = Array.from({ length: 10_000 }, (_, i) => `value-${i}`);
    const rules = trieRules(
      values.map((v) => JSON.stringify(v)),
      'e',
    );
    // One rule per node with several children: "value-" then digits, 1 + 10 + 100 + 1000 such nodes.
    expect(rules.length).toBeLessThanOrEqual(1_112);
  });
});

describe('GrammarComposer', () => {
  const tools = AGENT_TOOLS.map((t, i) => ({
    name: t.function.name,
    description: t.function.description,
    parameters: t.function.parameters,
    grammarSchema: toGrammarSchema(t.function.parameters, `tools.${i}.function.parameters`, false),
  }));
  const syntax = () => toolCallSyntax(resolveChatWrapper(model, { type: 'jinjaTemplate' }));

  it('composes an agent tool set once, then serves it from the cache', async () => {
    const composer = new GrammarComposer(llama, syntax(), { maxRules: 10_000, cacheSize: 4 });
    const req = { tools: { functions: tools, choice: { type: 'required' as const }, parallel: true }, param: 'tools' };
    const first = await composer.compose(req);
    const again = await composer.compose(structuredClone(req));
    expect(first.cached).toBe(false);
    expect(again.cached).toBe(true);
    expect(again.shaping).toEqual(first.shaping);
    expect(first.shaping.forcedCalls).toBe(true);
    expect(first.shaping.grammar).toContain('read_file');
  });

  it('a grammar over --max-grammar-rules is a 400 naming the flag and the request field', async () => {
    const composer = new GrammarComposer(llama, syntax(), { maxRules: 50, cacheSize: 0 });
    const err = await composer
      .compose({ tools: { functions: tools, choice: { type: 'auto' }, parallel: true }, param: 'tools' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GrammarTooLargeError);
    expect((err as GrammarTooLargeError).param).toBe('tools');
    expect((err as Error).message).toContain('--max-grammar-rules');
  });
});

describe('repetition bounds', () => {
  const n = MAX_REPETITION;
  const obj = { type: 'object', properties: { a: { type: 'string' }, b: { type: 'integer' } } };
  const atBound = {
    string: { type: 'string', minLength: n, maxLength: n },
    items: { type: 'array', items: obj, minItems: n, maxItems: n },
    properties: { type: 'object', additionalProperties: { type: 'string' }, minProperties: n, maxProperties: n },
    nested: { type: 'array', items: { type: 'array', items: { type: 'string', maxLength: n }, maxItems: n }, minItems: n },
  };

  // llama.cpp prints the whole grammar to stderr when its parser refuses one: at the bound, none is refused.
  it.each(Object.entries(atBound))('%s at the bound compiles', async (_, schema) => {
    const grammar = await llama.createGrammarForJsonSchema(toGrammarSchema(schema, 'response_format', true) as never);
    expect(grammar.grammar.length).toBeGreaterThan(0);
  });

  it.each(['minLength', 'minItems', 'minProperties'])('%s beyond the bound is a 400 naming it', (key) => {
    const type = key === 'minLength' ? 'string' : key === 'minItems' ? 'array' : 'object';
    const err = (() => {
      try {
        return toGrammarSchema({ type, [key]: n + 1 }, 'response_format.json_schema.schema', false);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(InvalidSchemaError);
    expect((err as InvalidSchemaError).param).toBe(`response_format.json_schema.schema.${key}`);
  });

  it('a maximum beyond the bound is refused under strict and not enforced otherwise', () => {
    expect(() => toGrammarSchema({ type: 'string', maxLength: n + 1 }, 'p', true)).toThrow(InvalidSchemaError);
    expect(toGrammarSchema({ type: 'string', maxLength: n + 1 }, 'p', false)).toEqual({ type: 'string' });
  });
});

describe('llama.cpp log lines from workers', () => {
  it('are cut to size and rate-limited, with counts of what was cut', () => {
    const posted: LlamaLogMessage[] = [];
    const log = llamaLogger((m) => posted.push(m));
    log(Level.error, 'x'.repeat(1_850_000));
    for (let i = 0; i < 30; i++) log(Level.warn, `line ${i}`);
    expect(posted[0]!.message.length).toBe(2000);
    expect(posted[0]!.truncated).toBe(1_848_000);
    // 20 lines a second: the first one plus 19 more; the other 11 are dropped, and counted on the next line that passes.
    expect(posted.length).toBe(20);
    expect(posted.every((m) => m.dropped === undefined)).toBe(true);
  });
});
