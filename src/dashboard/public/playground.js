/**
 * The playground: a chat that streams from /v1/chat/completions (fetch + ReadableStream, SSE read by
 * eventsource-parser) and shows, for each reply, the model that answered, the time to first token and the
 * generation speed. It chats with the model selected above when that is a text-generation model, else
 * (all models, or an embedding model selected) with the first text-generation model served.
 */
import { authHeaders, unauthorized } from './auth.js';
import { createParser } from './eventsource-parser.js';
import { integer, rate, seconds } from './format.js';

const $ = (id) => document.getElementById(id);

/**
 * The data of each server-sent event of a body, read by eventsource-parser (the copy the server serves from
 * its node_modules, the parser the tools and tests use): CRLF, named events and multi-line data included.
 */
async function* events(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const completed = [];
  const parser = createParser({ onEvent: (event) => completed.push(event.data) });
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parser.feed(value);
    yield* completed.splice(0);
  }
}

const assistant = (model) => (model ? `Assistant · ${model}` : 'Assistant');

function message(role, text, model) {
  const li = document.createElement('li');
  li.className = `msg ${role}`;
  const who = document.createElement('p');
  who.className = 'who';
  who.textContent = role === 'user' ? 'You' : assistant(model);
  const body = document.createElement('p');
  body.className = 'text';
  body.textContent = text;
  li.append(who, body);
  if (role === 'assistant') {
    const stats = document.createElement('p');
    stats.className = 'stats';
    li.append(stats);
  }
  $('chat-log').append(li);
  return li;
}

/**
 * The model to chat with: the selected one if it generates text, else the first that does; undefined while
 * the served models are not known yet (the request then names none and the server picks the same way).
 */
function chatModel(models, selected) {
  const generators = models.filter((m) => m.kind === 'generate');
  return generators.find((m) => m.id === selected) ?? generators[0];
}

/** Sets up the chat; returns `target(models, selected)`, which the dashboard calls with each answer and selection. */
export function setupPlayground() {
  const form = $('chat-form');
  const input = $('chat-input');
  const log = $('chat-log');
  /** The conversation sent with each request (failed turns are left out). */
  let history = [];
  let controller;
  /** The model id the next message goes to; undefined: none known yet. */
  let model;
  /** Whether the served models are known and none of them generates text: Send stays disabled. */
  let none = false;

  function target(models, selected) {
    const chosen = chatModel(models, selected);
    model = chosen?.id;
    // Every model's kind is known (once its vocabulary is read) and none generates text.
    none = models.length > 0 && !chosen && models.every((m) => m.kind !== null);
    const picked = models.find((m) => m.id === selected);
    const text = chosen
      ? chosen.id === selected || models.length === 1
        ? chosen.id
        : `${chosen.id} (the first text-generation model${picked ? `; ${picked.id} is not one` : ''})`
      : none
        ? 'no model: none of the served models generates text'
        : 'the first text-generation model';
    const el = $('chat-model');
    if (el.textContent !== text) el.textContent = text;
    $('chat-send').disabled = none || controller !== undefined;
  }

  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  $('chat-stop').addEventListener('click', () => controller?.abort());
  $('chat-clear').addEventListener('click', () => {
    controller?.abort();
    history = [];
    log.replaceChildren();
    input.focus();
  });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text || controller || none) return;
    input.value = '';
    message('user', text);
    const turn = [...history, { role: 'user', content: text }];
    const li = message('assistant', '', model);
    const who = li.querySelector('.who');
    const out = li.querySelector('.text');
    const stats = li.querySelector('.stats');
    li.dataset.state = 'streaming';
    li.setAttribute('aria-busy', 'true');
    controller = new AbortController();
    $('chat-send').disabled = true;
    $('chat-stop').disabled = false;

    const started = performance.now();
    let first;
    let last;
    let usage;
    let reply = '';
    try {
      const res = await fetch('/v1/chat/completions', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...authHeaders() },
        body: JSON.stringify({
          ...(model === undefined ? {} : { model }),
          messages: turn,
          stream: true,
          stream_options: { include_usage: true },
          max_tokens: Number($('chat-max-tokens').value) || 256,
          temperature: Number($('chat-temperature').value) || 0,
        }),
        signal: controller.signal,
      });
      if (!res.ok) {
        const body = await res.json().catch(() => ({}));
        if (res.status === 401) unauthorized(body.error?.message);
        throw new Error(body.error?.message ?? `HTTP ${res.status}`);
      }
      for await (const data of events(res.body)) {
        if (data === '[DONE]') break;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        // The model that answered, as the server names it.
        if (chunk.model && li.dataset.model !== chunk.model) {
          li.dataset.model = chunk.model;
          who.textContent = assistant(chunk.model);
        }
        if (chunk.usage) usage = chunk.usage;
        const delta = chunk.choices?.[0]?.delta?.content;
        if (delta) {
          last = performance.now();
          first ??= last;
          reply += delta;
          out.textContent = reply;
          log.scrollTop = log.scrollHeight;
        }
      }
      history = [...turn, { role: 'assistant', content: reply }];
      li.dataset.state = 'done';
    } catch (err) {
      const stopped = err.name === 'AbortError';
      li.dataset.state = stopped ? 'stopped' : 'error';
      if (stopped) history = [...turn, { role: 'assistant', content: reply }];
      out.textContent = stopped ? `${reply} [stopped]` : `${reply}${reply ? '\n' : ''}Error: ${err.message}`;
    } finally {
      const tokens = usage?.completion_tokens;
      const ttft = first === undefined ? undefined : (first - started) / 1000;
      // Decode speed: the tokens after the first over the time after the first (or, when the whole reply
      // arrived in one read, every token over the whole request).
      const tps =
        tokens > 1 && last > first
          ? (tokens - 1) / ((last - first) / 1000)
          : tokens > 0 && last > started
            ? tokens / ((last - started) / 1000)
            : undefined;
      stats.dataset.ttftMs = ttft === undefined ? '' : String(ttft * 1000);
      stats.dataset.tokensPerSecond = tps === undefined ? '' : String(tps);
      stats.textContent = `first token ${seconds(ttft)} · ${integer(tokens)} tokens · ${rate(tps)} tokens/s`;
      li.removeAttribute('aria-busy');
      controller = undefined;
      $('chat-send').disabled = none;
      $('chat-stop').disabled = true;
      input.focus();
    }
  });
  return { target };
}
