/**
 * Client JSON schemas (response_format, tool parameters) → the subset node-llama-cpp turns into a grammar
 * (GbnfJsonSchema). Checked on the main thread, so a bad schema is a 400 naming the keyword's path before
 * the request is queued.
 *
 * - Enforced: type (also lists of types), properties, additionalProperties, min/maxProperties, items,
 *   prefixItems, min/maxItems, min/maxLength, enum, const, anyOf / oneOf, $ref into $defs / definitions,
 *   format date-time / date / time. The grammar writes every property of an object (always valid: extra
 *   listed properties are allowed, and a required one is never missing) and no others.
 * - Annotations (title, description, default, examples, …) and unknown keywords are ignored, as JSON Schema
 *   validators do.
 * - Keywords the grammar cannot enforce (pattern, minimum, multipleOf, uniqueItems, allOf, not, …) are a 400
 *   with `strict: true`; without it the answer keeps the schema's structure and types but those keywords
 *   are not guaranteed.
 */
import { InvalidSchemaError, SchemaLimitError } from '../errors.js';
import type { GrammarSchema } from '../shared/protocol.js';

const TYPES = ['string', 'number', 'integer', 'boolean', 'null', 'object', 'array'] as const;
type JsonType = (typeof TYPES)[number];
const SCALAR_TYPES = new Set<string>(['string', 'number', 'integer', 'boolean', 'null']);
const FORMATS = new Set(['date-time', 'date', 'time']);

/** Keywords that constrain values in ways a grammar of node-llama-cpp's JSON subset cannot express. */
const UNENFORCEABLE = [
  'pattern',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'multipleOf',
  'uniqueItems',
  'allOf',
  'not',
  'if',
  'then',
  'else',
  'patternProperties',
  'propertyNames',
  'dependentRequired',
  'dependentSchemas',
  'dependencies',
  'contains',
  'minContains',
  'maxContains',
  'unevaluatedProperties',
  'unevaluatedItems',
];

/**
 * The grammar writes integers of at most 15 digits (workers/structured/gbnf.ts): bounds at or beyond
 * ±MAX_GRAMMAR_INTEGER are implied, such as the ±(2^53 - 1) that zod and pydantic put on every integer.
 */
const MAX_GRAMMAR_INTEGER = 999_999_999_999_999;

/** Bounds on an integer that the grammar's digit limit already guarantees. */
function impliedBound(schema: Obj, key: string): boolean {
  const v = schema[key];
  if (schema.type !== 'integer' || typeof v !== 'number') return false;
  return key === 'minimum' ? v <= -MAX_GRAMMAR_INTEGER : key === 'maximum' ? v >= MAX_GRAMMAR_INTEGER : false;
}

/** Any JSON value (an empty schema, `true`). */
const ANY: GrammarSchema = {
  oneOf: [{ type: ['string', 'number', 'boolean', 'null'] }, { type: 'object', additionalProperties: true }, { type: 'array' }],
};

/** Any JSON object: response_format json_object. */
export const ANY_OBJECT: GrammarSchema = { type: 'object', additionalProperties: true };

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isScalar = (v: unknown) => v === null || ['string', 'number', 'boolean'].includes(typeof v);

/** Operator bounds on one request's schemas (flags), so that no request composes an unbounded grammar. */
export interface SchemaLimits {
  /** JSON bytes of all the request's schemas (--max-schema-bytes). */
  maxBytes: number;
  /** Enum values over all the request's schemas (--max-enum-values). */
  maxEnumValues: number;
  /** anyOf / oneOf branches and listed types over all its schemas (--max-schema-alternatives). */
  maxAlternatives: number;
}

/**
 * What one request's schemas have used of the limits: tools and response_format are counted together, so
 * a request cannot pass by spreading its schemas over many tools.
 */
export class SchemaBudget {
  private readonly used = { bytes: 0, enum: 0, alternatives: 0 };

  constructor(readonly limits: SchemaLimits) {}

  schema(schema: unknown, path: string): void {
    this.add('bytes', Buffer.byteLength(JSON.stringify(schema) ?? ''), path);
  }

  enum(count: number, path: string): void {
    this.add('enum', count, path);
  }

  alternatives(count: number, path: string): void {
    this.add('alternatives', count, path);
  }

  private add(kind: keyof typeof BUDGETS, count: number, path: string): void {
    const used = (this.used[kind] += count);
    const { limit, flag, what } = BUDGETS[kind];
    if (used > this.limits[limit]) {
      throw new SchemaLimitError(path, `the request's schemas reach ${used} ${what} here`, this.limits[limit], flag);
    }
  }
}

/** Each budget: its limit, the flag that sets it, and what it counts. */
const BUDGETS = {
  bytes: { limit: 'maxBytes', flag: '--max-schema-bytes', what: 'bytes of JSON' },
  enum: { limit: 'maxEnumValues', flag: '--max-enum-values', what: 'enum values' },
  alternatives: { limit: 'maxAlternatives', flag: '--max-schema-alternatives', what: 'anyOf / oneOf branches and listed types' },
} as const;

/** No limits: for schemas that are not the client's (tests, fixed formats). */
const UNLIMITED: SchemaLimits = { maxBytes: Infinity, maxEnumValues: Infinity, maxAlternatives: Infinity };

/**
 * Converts `schema` (found at request path `path`); throws InvalidSchemaError naming the offending keyword,
 * or SchemaLimitError when the request's schemas together exceed `budget`'s limits.
 */
export function toGrammarSchema(schema: unknown, path: string, strict: boolean, budget = new SchemaBudget(UNLIMITED)): GrammarSchema {
  budget.schema(schema, path);
  return new Converter(path, strict, budget).convert(schema, path, 0);
}

/**
 * The largest length, item or property bound a grammar can carry. llama.cpp's grammar parser refuses a
 * repetition whose count times the rules it repeats reaches 2000 (MAX_REPETITION_THRESHOLD), and it
 * prints the whole grammar to stderr when it does; node-llama-cpp repeats up to two rules per bound, so
 * 999 always parses (test/grammar.test.ts checks each keyword at this bound). Beyond it a minimum is a 400;
 * a maximum is a 400 under strict, and otherwise not enforced (as llama.cpp would do past its threshold).
 */
export const MAX_REPETITION = 999;

const MAX_DEPTH = 64;

type RepetitionKey = 'minLength' | 'maxLength' | 'minItems' | 'maxItems' | 'minProperties' | 'maxProperties';

class Converter {
  constructor(
    private readonly rootPath: string,
    private readonly strict: boolean,
    private readonly budget: SchemaBudget,
  ) {}

  convert(schema: unknown, path: string, depth: number): GrammarSchema {
    if (depth > MAX_DEPTH) throw fail(path, `is nested deeper than ${MAX_DEPTH} levels`);
    if (schema === true) return ANY;
    if (schema === false) throw fail(path, 'is `false`: no value can match it');
    if (!isObj(schema)) throw fail(path, 'must be a JSON schema object');
    if (this.strict) {
      const bad = UNENFORCEABLE.find((k) => k in schema && !impliedBound(schema, k));
      if (bad) throw fail(`${path}.${bad}`, `'${bad}' cannot be enforced by the grammar; remove it or set strict to false`);
      if (typeof schema.format === 'string' && !FORMATS.has(schema.format)) {
        throw fail(
          `${path}.format`,
          `format '${schema.format}' cannot be enforced (supported: ${[...FORMATS].join(', ')}); remove it or set strict to false`,
        );
      }
    }
    const out: Obj = {};
    const defs = this.defs(schema, path, depth);
    if (defs) out.$defs = defs;
    if ('$ref' in schema) return { ...out, $ref: this.ref(schema.$ref, `${path}.$ref`) };
    if ('const' in schema) {
      if (!isScalar(schema.const))
        throw fail(`${path}.const`, 'must be a string, number, boolean or null (object and array constants are not supported)');
      return { ...out, const: schema.const };
    }
    if ('enum' in schema) {
      const values = schema.enum;
      if (!Array.isArray(values) || values.length === 0) throw fail(`${path}.enum`, 'must be a non-empty array');
      if (!values.every(isScalar)) throw fail(`${path}.enum`, 'values must be strings, numbers, booleans or null');
      this.budget.enum(values.length, `${path}.enum`);
      return { ...out, enum: values };
    }
    for (const key of ['anyOf', 'oneOf'] as const) {
      if (!(key in schema)) continue;
      const alts = schema[key];
      if (!Array.isArray(alts) || alts.length === 0) throw fail(`${path}.${key}`, 'must be a non-empty array of schemas');
      this.budget.alternatives(alts.length, `${path}.${key}`);
      // Generating one alternative satisfies anyOf; oneOf is taken the same way.
      const converted = alts.map((s, i) => this.convert(s, `${path}.${key}[${i}]`, depth + 1));
      // Constants only (the "enum with descriptions" idiom): an enum, which the grammar writes as a trie.
      if (converted.every((c) => Object.keys(c).length === 1 && 'const' in c)) return { ...out, enum: converted.map((c) => c.const) };
      return { ...out, oneOf: converted };
    }
    const types = this.types(schema, path);
    if (types === undefined) return { ...out, ...ANY };
    const parts = types.map((t) => this.typed(schema, t, path, depth));
    if (parts.length === 1) return { ...out, ...parts[0] };
    // Scalars can share one `type` list; objects and arrays need their own alternative.
    const scalars = types.filter((t) => SCALAR_TYPES.has(t) && t !== 'string');
    const others = parts.filter((_, i) => !scalars.includes(types[i]!));
    return { ...out, oneOf: [...(scalars.length ? [{ type: scalars }] : []), ...others] };
  }

  /** The schema's types: as given, or implied by its keywords; undefined for "any value". */
  private types(schema: Obj, path: string): JsonType[] | undefined {
    const t = schema.type;
    if (t === undefined) {
      if ('properties' in schema || 'additionalProperties' in schema) return ['object'];
      if ('items' in schema || 'prefixItems' in schema) return ['array'];
      if ('minLength' in schema || 'maxLength' in schema || 'format' in schema) return ['string'];
      return undefined;
    }
    const list = Array.isArray(t) ? t : [t];
    if (list.length === 0 || !list.every((x): x is JsonType => TYPES.includes(x as JsonType))) {
      throw fail(`${path}.type`, `must be one of ${TYPES.join(', ')} (or an array of them)`);
    }
    if (list.length > 1) this.budget.alternatives(list.length, `${path}.type`);
    return [...new Set(list)];
  }

  private typed(schema: Obj, type: JsonType, path: string, depth: number): GrammarSchema {
    if (type === 'object') return this.object(schema, path, depth);
    if (type === 'array') return this.array(schema, path, depth);
    if (type !== 'string') return { type };
    const out: Obj = { type };
    if (typeof schema.format === 'string' && FORMATS.has(schema.format)) return { type, format: schema.format };
    for (const key of ['minLength', 'maxLength'] as const) if (key in schema) this.repetition(schema, key, path, out);
    return out;
  }

  private object(schema: Obj, path: string, depth: number): GrammarSchema {
    const out: Obj = { type: 'object' };
    if ('properties' in schema) {
      if (!isObj(schema.properties)) throw fail(`${path}.properties`, 'must be an object of schemas');
      out.properties = Object.fromEntries(
        Object.entries(schema.properties).map(([k, v]) => [k, this.convert(v, `${path}.properties.${k}`, depth + 1)]),
      );
    }
    if ('required' in schema && !(Array.isArray(schema.required) && schema.required.every((r) => typeof r === 'string'))) {
      throw fail(`${path}.required`, 'must be an array of property names');
    }
    const extra = schema.additionalProperties;
    if (extra === true || isObj(extra))
      out.additionalProperties = extra === true ? true : this.convert(extra, `${path}.additionalProperties`, depth + 1);
    else if (extra !== undefined && extra !== false) throw fail(`${path}.additionalProperties`, 'must be a boolean or a schema');
    for (const key of ['minProperties', 'maxProperties'] as const) if (key in schema) this.repetition(schema, key, path, out);
    return out;
  }

  private array(schema: Obj, path: string, depth: number): GrammarSchema {
    const out: Obj = { type: 'array' };
    if ('items' in schema && schema.items !== true) out.items = this.convert(schema.items, `${path}.items`, depth + 1);
    if ('prefixItems' in schema) {
      if (!Array.isArray(schema.prefixItems)) throw fail(`${path}.prefixItems`, 'must be an array of schemas');
      out.prefixItems = schema.prefixItems.map((s, i) => this.convert(s, `${path}.prefixItems[${i}]`, depth + 1));
    }
    for (const key of ['minItems', 'maxItems'] as const) if (key in schema) this.repetition(schema, key, path, out);
    return out;
  }

  /** A length, item or property bound, within MAX_REPETITION (see there). */
  private repetition(schema: Obj, key: RepetitionKey, path: string, out: Obj): void {
    const n = count(schema[key], `${path}.${key}`);
    if (n <= MAX_REPETITION) {
      out[key] = n;
      return;
    }
    if (key.startsWith('min') || this.strict) {
      const or = key.startsWith('max') ? ' (or set strict to false: the bound is then not enforced)' : '';
      throw fail(`${path}.${key}`, `must be at most ${MAX_REPETITION}: the grammar cannot repeat more${or}`);
    }
  }

  /** `$defs` and the older `definitions`, both as $defs (the only place node-llama-cpp resolves refs). */
  private defs(schema: Obj, path: string, depth: number): Obj | undefined {
    let defs: Obj | undefined;
    for (const key of ['$defs', 'definitions'] as const) {
      if (!(key in schema)) continue;
      const value = schema[key];
      if (!isObj(value)) throw fail(`${path}.${key}`, 'must be an object of schemas');
      defs ??= {};
      for (const [name, def] of Object.entries(value)) defs[name] = this.convert(def, `${path}.${key}.${name}`, depth + 1);
    }
    return defs;
  }

  private ref(ref: unknown, path: string): string {
    const m = typeof ref === 'string' ? /^#\/(\$defs|definitions)\/([^/]+)$/.exec(ref) : null;
    if (!m) throw fail(path, `only local references of the form #/$defs/NAME or #/definitions/NAME are supported (in ${this.rootPath})`);
    return `#/$defs/${m[2]}`;
  }
}

function count(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw fail(path, 'must be a non-negative integer');
  return v;
}

const fail = (path: string, message: string) => new InvalidSchemaError(`${path}: ${message}`, path);
