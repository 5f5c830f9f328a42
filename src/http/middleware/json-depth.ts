/**
 * --max-json-depth. V8 parses JSON of any depth without recursion, but what comes after recurses: the
 * structured clone that hands a task to a worker, JSON.stringify, chat templates, grammar compilation. At
 * 100k levels those overflow the stack, and the client saw a 5xx for a request that was simply too deep.
 * So every JSON value from a client is measured right after it is parsed, before anything walks it: the
 * body (bodyDepthCheck) and every JSON string the server parses from a field (parseClientJson), by an
 * iterative scan that cannot overflow itself.
 */
import type { RequestHandler } from 'express';
import { InvalidRequestError, JsonTooDeepError } from '../../errors.js';

interface Frame {
  value: object;
  depth: number;
  parent: Frame | undefined;
  key: string | number | undefined;
}

/**
 * The path of the first array or object nested deeper than `maxDepth` (the outermost one is at depth 1),
 * or undefined when there is none. Iterative: an explicit stack, no recursion.
 */
export function tooDeep(value: unknown, maxDepth: number): (string | number)[] | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const stack: Frame[] = [{ value, depth: 1, parent: undefined, key: undefined }];
  for (let frame = stack.pop(); frame !== undefined; frame = stack.pop()) {
    if (frame.depth > maxDepth) return pathOf(frame);
    const parent = frame;
    const push = (key: string | number, child: unknown) => {
      if (typeof child === 'object' && child !== null) stack.push({ value: child, depth: parent.depth + 1, parent, key });
    };
    if (Array.isArray(parent.value)) parent.value.forEach((child, i) => push(i, child));
    else for (const key of Object.keys(parent.value)) push(key, (parent.value as Record<string, unknown>)[key]);
  }
  return undefined;
}

function pathOf(frame: Frame): (string | number)[] {
  const path: (string | number)[] = [];
  for (let f: Frame | undefined = frame; f?.key !== undefined; f = f.parent) path.push(f.key);
  return path.reverse();
}

/** Segments of a too-deep path named in the error: enough to find the field, not 64 levels of it. */
const SHOWN_SEGMENTS = 8;

/** A path as an error's `param`: `tools.0.function.parameters.properties.a…`. */
function param(path: readonly (string | number)[]): string {
  const shown = path.slice(0, SHOWN_SEGMENTS).map((k) => (typeof k === 'string' && k.length > 40 ? `${k.slice(0, 40)}…` : String(k)));
  return path.length > SHOWN_SEGMENTS ? `${shown.join('.')}…` : shown.join('.') || 'body';
}

/** Runs right after the JSON body parser: a body nested beyond `maxDepth` is a 400 naming where. */
export function bodyDepthCheck(maxDepth: number): RequestHandler {
  return (req, _res, next) => {
    const path = tooDeep(req.body, maxDepth);
    next(path === undefined ? undefined : new JsonTooDeepError(param(path), maxDepth));
  };
}

/**
 * The one way the server parses JSON a client sent inside a string field (tool call arguments): a 400
 * naming `field` when it is not JSON or is nested beyond `maxDepth`.
 * @param what what the string holds, for the message ("the arguments of the call")
 */
export function parseClientJson(text: string, field: string, maxDepth: number, what: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new InvalidRequestError(`${field}: must be a JSON string (${what})`, field, 'invalid_value');
  }
  const path = tooDeep(value, maxDepth);
  if (path !== undefined) throw new JsonTooDeepError(field, maxDepth);
  return value;
}
