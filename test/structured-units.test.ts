/**
 * The pure parts of tool calls and structured output: the tool-call parser under any split of the text,
 * the JSON-schema subset converter, and GBNF rule renaming.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidSchemaError } from '../src/errors.js';
import { toGrammarSchema } from '../src/structured/json-schema.js';
import { CompositionError, GrammarComposer } from '../workers/structured/compose.js';
import { jsonValueRules, prefixRules } from '../workers/structured/gbnf.js';
import { ToolCallParser, type Piece } from '../workers/structured/tool-parser.js';
import type { ToolCallSyntax } from '../workers/structured/tool-syntax.js';

const QWEN: ToolCallSyntax = {
  prefix: '<tool_call>\n{"name": "',
  paramsPrefix: '", "arguments": ',
  suffix: '}\n</tool_call>',
  between: '\n',
  trigger: '<tool_call>',
};

/** Feeds `text` in the given pieces and merges the output into text + calls. */
function parse(pieces: string[], forced = false) {
  const parser = new ToolCallParser(QWEN, forced);
  const out: Piece[] = [...pieces.flatMap((p) => parser.push(p)), ...parser.flush()];
  let text = '';
  const calls: { name: string; arguments: string }[] = [];
  for (const p of out) {
    if (p.kind === 'text') text += p.text;
    else if (p.delta.name !== undefined) calls[p.delta.index] = { name: p.delta.name, arguments: p.delta.arguments };
    else calls[p.delta.index]!.arguments += p.delta.arguments;
  }
  return { text, calls };
}

/** Every way of cutting `text` at the given points. */
const splits = (text: string) =>
  fc.uniqueArray(fc.integer({ min: 1, max: Math.max(1, text.length - 1) })).map((cuts) => {
    const at = [0, ...cuts.sort((a, b) => a - b), text.length];
    return at.slice(1).map((end, i) => text.slice(at[i], end));
  });

const call = (name: string, args: string) => `${QWEN.prefix}${name}${QWEN.paramsPrefix}${args}${QWEN.suffix}`;

describe('ToolCallParser', () => {
  const answer = `Let me check. ${call('get_weather', '{"city": "Paris {x}", "n": [1, {"a": "}"}]}')}\n${call('get_time', '{}')}`;
  const expected = {
    text: 'Let me check. ',
    calls: [
      { name: 'get_weather', arguments: '{"city": "Paris {x}", "n": [1, {"a": "}"}]}' },
      { name: 'get_time', arguments: '{}' },
    ],
  };

  it('splits text and calls the same way however the text is cut into tokens', () => {
    fc.assert(
      fc.property(splits(answer), (pieces) => {
        expect(parse(pieces)).toEqual(expected);
      }),
    );
  });

  it('a forced answer is calls from the first character', () => {
    expect(parse([call('f', '{"a": 1}')], true)).toEqual({ text: '', calls: [{ name: 'f', arguments: '{"a": 1}' }] });
  });

  it('text that only looks like the start of a trigger is held, then released', () => {
    const parser = new ToolCallParser(QWEN, false);
    expect(parser.push('a <tool')).toEqual([{ kind: 'text', text: 'a ' }]);
    expect(parser.push('box>')).toEqual([{ kind: 'text', text: '<toolbox>' }]);
    expect(parser.flush()).toEqual([]);
  });

  it('reports the text the trigger came with, for the grammar switch', () => {
    const parser = new ToolCallParser(QWEN, false);
    parser.push('hi <tool_call>');
    expect(parser.engagedWith).toBe('<tool_call>');
  });

  it('a trigger not followed by the call syntax is answer text after all', () => {
    expect(parse(['x <tool_call> is a tag'])).toEqual({ text: 'x <tool_call> is a tag', calls: [] });
  });

  it('an answer cut inside a trigger keeps the held text', () => {
    expect(parse(['done <tool_c'])).toEqual({ text: 'done <tool_c', calls: [] });
  });
});

describe('toGrammarSchema', () => {
  const convert = (schema: unknown, strict = false) => toGrammarSchema(schema, 'schema', strict);
  const fails = (schema: unknown, param: string, strict = false) => {
    try {
      convert(schema, strict);
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidSchemaError);
      expect((err as InvalidSchemaError).param).toBe(param);
      return;
    }
    throw new Error(`accepted ${JSON.stringify(schema)}`);
  };

  it('keeps what the grammar enforces and drops annotations', () => {
    expect(
      convert({ title: 'T', type: 'object', properties: { a: { type: 'string', maxLength: 3, description: 'd' } }, required: ['a'] }),
    ).toEqual({
      type: 'object',
      properties: { a: { type: 'string', maxLength: 3 } },
    });
  });

  it('maps anyOf to oneOf, definitions to $defs, and type lists with objects to alternatives', () => {
    expect(convert({ anyOf: [{ type: 'integer' }, { type: 'null' }] })).toEqual({ oneOf: [{ type: 'integer' }, { type: 'null' }] });
    expect(convert({ definitions: { d: { type: 'boolean' } }, $ref: '#/definitions/d' })).toEqual({
      $defs: { d: { type: 'boolean' } },
      $ref: '#/$defs/d',
    });
    expect(convert({ type: ['object', 'null'] })).toEqual({ oneOf: [{ type: ['null'] }, { type: 'object' }] });
  });

  it('implies types from keywords, and an empty schema is any value', () => {
    expect(convert({ properties: {} })).toEqual({ type: 'object', properties: {} });
    expect(convert({ items: { type: 'string' } })).toEqual({ type: 'array', items: { type: 'string' } });
    expect(convert({}).oneOf).toHaveLength(3);
  });

  it('unenforceable keywords: accepted without strict, a 400 with it (unless the grammar implies them)', () => {
    expect(convert({ type: 'integer', minimum: 3 })).toEqual({ type: 'integer' });
    fails({ type: 'integer', minimum: 3 }, 'schema.minimum', true);
    fails({ type: 'object', properties: { s: { type: 'string', format: 'email' } } }, 'schema.properties.s.format', true);
    // zod and pydantic bound every integer to the safe range, which 15-digit integers never leave.
    expect(convert({ type: 'integer', minimum: -(2 ** 53 - 1), maximum: 2 ** 53 - 1 }, true)).toEqual({ type: 'integer' });
  });

  it('invalid schemas name the keyword', () => {
    fails({ type: 'str' }, 'schema.type');
    fails({ type: 'object', properties: { a: { enum: [{}] } } }, 'schema.properties.a.enum');
    fails({ type: 'array', items: false }, 'schema.items');
    fails({ $ref: '#/components/x' }, 'schema.$ref');
    fails({ type: 'string', maxLength: 1.5 }, 'schema.maxLength');
    fails({ type: 'object', required: 'a' }, 'schema.required');
    fails([], 'schema');
  });
});

describe('GBNF composition', () => {
  it('prefixRules renames rules and references, not literals, classes or repetition counts', () => {
    const g = 'root ::= "a root" item{2,3} [a-z-]\nitem ::= ( root | "x" )';
    expect(prefixRules(g, 'p-')).toBe('p-root ::= "a root" p-item{2,3} [a-z-]\np-item ::= ( p-root | "x" )');
  });

  it("jsonValueRules drops node-llama-cpp's newline tail and bounds the number rules", () => {
    const g = 'root ::= "{" integer-number-rule "}" "\\n\\n\\n\\n" [\\n]*\ninteger-number-rule ::= [0-9]+';
    expect(jsonValueRules(g, 'j-')).toBe(
      'j-root ::= "{" j-integer-number-rule "}"\nj-integer-number-rule ::= "-"? ("0" | [1-9] [0-9]{0,14})',
    );
  });

  it('jsonValueRules refuses a grammar of another shape', () => {
    expect(() => jsonValueRules('root ::= "x"', 'j-')).toThrow(/changed shape/);
  });
});

describe('grammar failures: the client schema is a 400, our own composition a 500', () => {
  /** A Llama whose schema grammars and grammar parser behave as given. */
  function composer(schemaGrammar: () => string, parse: () => void) {
    const llama = {
      createGrammarForJsonSchema: () => Promise.resolve({ grammar: schemaGrammar() }),
      createGrammar: () => Promise.resolve(parse()),
    };
    return new GrammarComposer(llama as never, undefined, { maxRules: 1000, cacheSize: 4 });
  }
  const request = { json: { type: 'object', properties: {} } as never, param: 'response_format.json_schema.schema' };
  const schemaGrammar = () => 'root ::= "{}" "\\n\\n\\n\\n" [\\n]*';

  it('a schema node-llama-cpp refuses is invalid_schema (400) naming the field', async () => {
    const refused = composer(
      () => {
        throw new Error('unsupported keyword');
      },
      () => {},
    ).compose(request);
    await expect(refused).rejects.toBeInstanceOf(InvalidSchemaError);
    await expect(refused).rejects.toMatchObject({ status: 400, param: 'response_format.json_schema.schema' });
  });

  it('a composed grammar llama.cpp does not parse is a CompositionError: a 500, not the client invalid_schema', async () => {
    const broken = composer(schemaGrammar, () => {
      throw new Error('parse error at line 1');
    }).compose(request);
    await expect(broken).rejects.toBeInstanceOf(CompositionError);
    await expect(broken).rejects.toMatchObject({ status: 500, code: 'internal_error' });
    await expect(broken).rejects.not.toBeInstanceOf(InvalidSchemaError);
  });

  it('a well-formed schema composes', async () => {
    const { shaping } = await composer(schemaGrammar, () => {}).compose(request);
    expect(shaping.grammar).toContain('root ::=');
  });
});
