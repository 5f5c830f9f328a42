/**
 * The served model's vocabulary and chat template in the main thread (a vocabulary-only load: no
 * weights, no context), for what needs tokens without generating: /tokenize, /detokenize, token counts
 * (Anthropic's count_tokens) and echoing token-id prompts.
 *
 * node-llama-cpp's backend binary is process-wide: the main thread asks for the same GPU mode as the
 * in-process workers (one binary in the process); the front of engine processes, which runs no model,
 * asks for the CPU build.
 */
import { getLlama, LlamaLogLevel, resolveChatWrapper, type Token } from 'node-llama-cpp';
import type { Logger } from 'pino';
import { NotReadyError } from '../errors.js';
import type { GpuMode } from '../shared/protocol.js';
import { promptTokens, type PromptModel } from '../shared/prompt.js';
import type { GenerateInput, OutputConstraints } from '../shared/protocol.js';

export class Vocabulary {
  private constructor(private readonly m: PromptModel) {}

  static async load(modelPath: string, gpu: GpuMode): Promise<Vocabulary> {
    const llama = await getLlama({ gpu: gpu === 'off' ? false : gpu, maxThreads: 1, build: 'never', logLevel: LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath, vocabOnly: true });
    const chatWrapper = resolveChatWrapper(model, { type: 'jinjaTemplate' });
    return new Vocabulary({ model, chatWrapper, vocabularySize: model.fileInfo.metadata.tokenizer.ggml.tokens.length });
  }

  get size(): number {
    return this.m.vocabularySize;
  }

  /** The prompt's tokens exactly as a worker would evaluate them. */
  prompt(input: GenerateInput, constraints?: OutputConstraints): Token[] {
    return promptTokens(this.m, input, constraints);
  }

  /** Plain text; `special` also parses special-token text (`<|im_start|>`) into their ids. */
  tokenize(text: string, special: boolean): Token[] {
    return this.m.model.tokenize(text, special);
  }

  /** `special`: render special tokens as their text (else they are dropped). */
  detokenize(tokens: readonly Token[], special: boolean): string {
    return this.m.model.detokenize(tokens, special);
  }

  /** One token's text (pieces of multi-byte characters come out as U+FFFD). */
  piece(token: Token): string {
    return this.m.model.detokenize([token], true);
  }
}

/** The vocabulary once loaded; routes that need it answer 503 until then. */
export class VocabularyHandle {
  private value: Vocabulary | undefined;
  private error: string | undefined;

  constructor(loading: Promise<Vocabulary>, log: Logger) {
    loading.then(
      (v) => (this.value = v),
      (err: unknown) => {
        this.error = err instanceof Error ? err.message : String(err);
        log.error({ err: this.error }, 'could not load the vocabulary in the main thread');
      },
    );
  }

  get(): Vocabulary {
    if (this.value) return this.value;
    throw new NotReadyError(this.error ? `The vocabulary could not be loaded: ${this.error}` : 'The model is still loading.');
  }
}
