/**
 * How the model writes a tool call, as node-llama-cpp's chat wrapper worked it out from the model's own
 * chat template (for Qwen2.5: `<tool_call>\n{"name": "NAME", "arguments": ARGS}\n</tool_call>`, calls
 * separated by a newline).
 */
import { LlamaText, type ChatWrapper } from 'node-llama-cpp';

export interface ToolCallSyntax {
  /** Text that opens a call, up to the function's name. */
  prefix: string;
  /** Between the name and the arguments' JSON. */
  paramsPrefix: string;
  /** After the arguments. */
  suffix: string;
  /** Between two calls of one answer (parallel calls). */
  between: string;
  /** The start of `prefix` that tells a call from text in a free answer (`<tool_call>`). */
  trigger: string;
}

const text = (value: string | LlamaText | undefined): string =>
  value == null ? '' : typeof value === 'string' ? value : LlamaText(value).toString();

/** The wrapper's tool-call syntax, or undefined when its template has none that can be parsed back. */
export function toolCallSyntax(wrapper: ChatWrapper): ToolCallSyntax | undefined {
  const { call, parallelism } = wrapper.settings.functions;
  const syntax = {
    prefix: text(call.prefix),
    paramsPrefix: text(call.paramsPrefix),
    suffix: text(call.suffix),
    between: text(parallelism?.call.betweenCalls),
  };
  // Templates that repeat the function's name after it ({{functionName}}) are not supported.
  if (syntax.prefix === '' || syntax.paramsPrefix === '' || Object.values(syntax).some((s) => s.includes('{{'))) return undefined;
  // The trigger ends where the JSON of the call begins: the model may space that part differently.
  const trigger = syntax.prefix.split(/[\s{"]/)[0]!;
  return { ...syntax, trigger };
}
