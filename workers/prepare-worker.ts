/**
 * Tokenizer worker (Piscina): everything a request needs before a model worker can take it, whose cost
 * grows with what the client sent — tokenizing prompts (linear-time special-token split), rendering chat
 * templates, composing grammars — and the /tokenize and /detokenize answers. It loads the model's
 * vocabulary only (no weights, no context). One job at a time; nothing here holds a client's connection.
 */
import { parentPort } from 'node:worker_threads';
import { getLlama, LlamaLogLevel, resolveChatWrapper, type LlamaModel, type Token } from 'node-llama-cpp';
import { workerData } from 'piscina';
import { ApiError, ContextLengthExceededError, InternalError } from '../src/errors.js';
import {
  TRACE_CONTENT_CHARS,
  traceContent,
  type PrepareControl,
  type PrepareInit,
  type PrepareJob,
  type PrepareResult,
  type PreparedPrompts,
} from '../src/shared/prepare-protocol.js';
import { checkedTokens, promptTokens, type PromptModel } from '../src/shared/prompt.js';
import type { GenerateInput } from '../src/shared/protocol.js';
import { TextTokenizer } from '../src/tokenizer/text-tokenizer.js';
import { isEmbeddingModel } from './embed.js';
import { faultIn } from './faults.js';
import { llamaLogger } from './llama-log.js';
import { CompositionError, GrammarComposer } from './structured/compose.js';
import { toolCallSyntax } from './structured/tool-syntax.js';
import { tokenizeBody } from './tokenize-body.js';

const init = workerData as PrepareInit;
const announce = (msg: PrepareControl) => parentPort!.postMessage(msg);

interface Loaded {
  prompt: PromptModel;
  /** The most bytes of text one token stands for (the longest piece or special-token text). */
  maxTokenBytes: number;
  composer: GrammarComposer;
  pieces: (token: number) => string;
}

let loaded: Loaded | undefined;
try {
  const llama = await getLlama({
    gpu: init.gpu === 'off' ? false : init.gpu,
    maxThreads: 1,
    build: 'never',
    logLevel: LlamaLogLevel.error,
    logger: llamaLogger(),
  });
  const model = await llama.loadModel({ modelPath: init.modelPath, vocabOnly: true });
  // The model's own Jinja template, as the model workers use it (see workers/model.ts).
  const chatWrapper = resolveChatWrapper(model, { type: 'jinjaTemplate' });
  const vocabularySize = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
  const pieceCache = new Map<number, string>();
  loaded = {
    prompt: { model, chatWrapper, vocabularySize, tokenizer: new TextTokenizer(model) },
    maxTokenBytes: longestToken(model, vocabularySize),
    composer: new GrammarComposer(llama, toolCallSyntax(chatWrapper), { maxRules: init.maxGrammarRules, cacheSize: init.grammarCacheSize }),
    // A token's text; pieces of multi-byte characters come out as U+FFFD. At most one entry per token id.
    pieces: (token) => {
      let piece = pieceCache.get(token);
      if (piece === undefined) pieceCache.set(token, (piece = model.detokenize([token as never], true)));
      return piece;
    },
  };
  announce({ type: 'prepare_ready', embedding: isEmbeddingModel(model) });
} catch (err) {
  announce({ type: 'prepare_failed', message: err instanceof Error ? err.message : String(err) });
}

/** Bytes of the longest token: a pass over the vocabulary at load (tens of milliseconds for 152k tokens). */
function longestToken(model: LlamaModel, vocabularySize: number): number {
  let longest = 1;
  for (let t = 0; t < vocabularySize; t++) longest = Math.max(longest, Buffer.byteLength(model.detokenize([t as Token], true)));
  return longest;
}

/**
 * A prompt needs at least one token per `maxTokenBytes` bytes of its text: when its text alone needs more
 * tokens than the context holds, it is refused without being tokenized. So a generation request's
 * tokenizing is bounded by the context (times the longest token), not by the body limit.
 */
function refuseOverlong(l: Loaded, inputs: readonly GenerateInput[], param: string): void {
  inputs.forEach((input, i) => {
    const texts =
      input.kind === 'text' ? [input.prompt, input.suffix ?? ''] : input.kind === 'chat' ? input.messages.map((m) => m.content) : [];
    const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t), 0);
    const atLeast = Math.ceil(bytes / l.maxTokenBytes);
    if (atLeast < init.contextSize) return;
    const at = (input.kind !== 'chat' && input.param) || (inputs.length > 1 ? `${param}.${i}` : param);
    throw new ContextLengthExceededError(
      `This model's maximum context length is ${init.contextSize} tokens (--context-size); ${at} has at least ${atLeast} tokens (${bytes} bytes of text, at most ${l.maxTokenBytes} bytes per token). Shorten it.`,
      at,
    );
  });
}

async function prompts(l: Loaded, job: Extract<PrepareJob, { op: 'prompts' }>): Promise<PreparedPrompts> {
  if (job.fitContext) refuseOverlong(l, job.inputs, job.param);
  const tools = job.tools && { functions: job.tools, choice: { type: 'auto' as const }, parallel: true };
  const prompts = job.inputs.map((input: GenerateInput) => ({
    tokens: promptTokens(l.prompt, input, tools && { tools }, job.param),
    ...(job.echo &&
      input.kind === 'tokens' && {
        echo: l.prompt.model.detokenize(checkedTokens(input.tokens, l.prompt.vocabularySize, job.param), false),
      }),
  }));
  const composed = job.shaping ? await l.composer.compose(job.shaping) : undefined;
  // Test-only: a real request (fault injection off) is never serialized for it.
  const fault = init.faults ? faultIn(JSON.stringify(job.inputs)) : undefined;
  return {
    prompts,
    shaping: composed?.shaping,
    grammarCached: composed?.cached,
    ...(job.content && { content: prompts.map((p) => promptText(l, p.tokens)) }),
    ...(fault && { fault }),
  };
}

/**
 * A prompt as the model reads it, for a trace: its tokens (chat template and special tokens included) as text,
 * at most TRACE_CONTENT_CHARS of it. A token is at least one character, so a long prompt's head is enough.
 */
function promptText(l: Loaded, tokens: readonly number[]): string {
  if (tokens.length <= TRACE_CONTENT_CHARS) return traceContent(l.prompt.model.detokenize(tokens as Token[], true));
  const head = l.prompt.model.detokenize(tokens.slice(0, TRACE_CONTENT_CHARS) as Token[], true).slice(0, TRACE_CONTENT_CHARS);
  return `${head}… [${tokens.length} tokens in all]`;
}

export default async function run(job: PrepareJob): Promise<PrepareResult> {
  if (!loaded) throw new Error('the tokenizer worker could not load the vocabulary');
  try {
    switch (job.op) {
      case 'prompts':
        return { ok: true, op: 'prompts', value: await prompts(loaded, job) };
      case 'tokenize': {
        const { source } = job;
        const tokens =
          'text' in source
            ? loaded.prompt.tokenizer.tokenize(source.text, source.special)
            : promptTokens(loaded.prompt, source.input, {}, 'messages');
        return { ok: true, op: 'tokenize', body: tokenizeBody(tokens, job.pieces ? loaded.pieces : undefined, job.maxModelLen) };
      }
      case 'detokenize': {
        const tokens = checkedTokens(job.tokens, loaded.prompt.vocabularySize, job.param);
        return { ok: true, op: 'detokenize', text: loaded.prompt.model.detokenize(tokens, true) };
      }
    }
  } catch (err) {
    if (err instanceof CompositionError) {
      return {
        ok: false,
        error: new InternalError('The grammar for this request could not be built.').toPayload(),
        detail: `${err.message}; grammar begins: ${err.grammarHead}`,
      };
    }
    if (err instanceof ApiError) return { ok: false, error: err.toPayload() };
    throw err;
  }
}
