/**
 * Which model of a server the benchmark and the soak tool talk to. A qwen-serve may serve several models
 * (`--model ID=SOURCE`), a chat model beside an embedding model say, and lists each in /v1/models with its
 * `kind`; older servers and other OpenAI-compatible servers (llama-server, vLLM) list models without one.
 */

/** One entry of /v1/models, as far as the tools read it. */
export interface ListedModel {
  id: string;
  /** qwen-serve's: `generate` (completions and chats) or `embed` (embeddings only). Absent elsewhere. */
  kind?: string;
}

/**
 * The model to send generation requests to: `wanted` (--served-model) when given, which must be listed and
 * not an embedding model; otherwise the first model of kind `generate`, or the first listed when no entry
 * has a kind. Throws an Error naming what is listed when there is no such model.
 */
export function pickServedModel(listed: readonly ListedModel[], wanted: string | undefined, where: string): string {
  const names = () => (listed.length > 0 ? listed.map((m) => (m.kind ? `${m.id} (${m.kind})` : m.id)).join(', ') : 'nothing');
  if (wanted !== undefined) {
    const found = listed.find((m) => m.id === wanted);
    if (!found) throw new Error(`--served-model ${wanted}: ${where} does not list it (it lists ${names()})`);
    if (found.kind === 'embed') {
      throw new Error(`--served-model ${wanted} is an embedding model (kind "embed"): name a generation model (${where} lists ${names()})`);
    }
    return wanted;
  }
  const generate = listed.find((m) => m.kind === 'generate');
  if (generate) return generate.id;
  if (listed.some((m) => m.kind !== undefined)) throw new Error(`${where} lists no generation model (it lists ${names()})`);
  // No kinds (an older server, llama-server): the first listed, or a placeholder name the server ignores.
  return listed[0]?.id ?? 'default';
}

/** GET /v1/models and pick the served model (see pickServedModel). */
export async function resolveServedModel(url: string, wanted: string | undefined, apiKey?: string): Promise<string> {
  const where = `${url}/v1/models`;
  const res = await fetch(where, { headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {} });
  if (!res.ok) throw new Error(`${where}: ${res.status}`);
  const body = (await res.json()) as { data?: ListedModel[] };
  return pickServedModel(body.data ?? [], wanted, where);
}
