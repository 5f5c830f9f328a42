/**
 * Embedding models (a GGUF that declares a pooling type, such as gte-Qwen2): the worker holds an embedding
 * context instead of a generation context, and each task returns one vector, L2-normalized as OpenAI's
 * embeddings are (cosine similarity is then a dot product).
 */
import type { LlamaModel, Token } from 'node-llama-cpp';
import { ContextLengthExceededError, InvalidRequestError } from '../src/errors.js';
import type { GenerateInput } from '../src/shared/protocol.js';
import { checkedTokens } from '../src/shared/prompt.js';
import { asGenerationError } from './generation-error.js';
import type { LoadedEmbedder } from './model.js';

/** llama.cpp's pooling types: unspecified (-1) and none (0) mean a text-generation model. */
export function isEmbeddingModel(model: LlamaModel): boolean {
  const metadata = model.fileInfo.metadata as unknown as Record<string, { pooling_type?: number } | undefined>;
  const pooling = metadata[model.fileInfo.metadata.general.architecture]?.pooling_type;
  return pooling !== undefined && pooling > 0;
}

export async function embed(loaded: LoadedEmbedder, input: GenerateInput): Promise<{ vector: number[]; tokens: number }> {
  const { embeddings, model, contextSize } = loaded;
  const tokens: Token[] = asGenerationError(() => {
    if (input.kind === 'chat' || input.suffix !== undefined)
      throw new InvalidRequestError('input: must be text or token ids', 'input', 'invalid_value');
    const param = input.param ?? 'input';
    const ids = input.kind === 'tokens' ? checkedTokens(input.tokens, loaded.vocabularySize, param) : model.tokenize(input.prompt, false);
    // What the context evaluates (the model may add BOS/EOS) must leave one cell free, as node-llama-cpp
    // requires; beyond that it throws, which would be a 500 for a request that is simply too long.
    const length = embeddings.calculateInputLength(ids);
    if (length >= contextSize) {
      throw new ContextLengthExceededError(
        `This model's maximum context length is ${contextSize} tokens (--context-size), so an input may have at most ${contextSize - 1}; ${param} has ${length} tokens. Shorten it.`,
        param,
      );
    }
    return ids;
  });
  const { vector } = await embeddings.getEmbeddingFor(tokens);
  const norm = Math.hypot(...vector) || 1;
  return { vector: Array.from(vector, (v) => v / norm), tokens: tokens.length };
}
