/**
 * The API key for a server started with --api-key: asked for once, kept in this tab's sessionStorage,
 * sent as a Bearer token on /dashboard/data and on the playground's chat requests.
 */
const KEY = 'qwen-serve.apiKey';
let memory = null; // when sessionStorage is unavailable (some privacy modes)

export function getKey() {
  try {
    return sessionStorage.getItem(KEY) ?? memory;
  } catch {
    return memory;
  }
}

export function setKey(key) {
  memory = key;
  try {
    if (key === null) sessionStorage.removeItem(KEY);
    else sessionStorage.setItem(KEY, key);
  } catch {
    // memory only
  }
}

export function authHeaders() {
  const key = getKey();
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** Tells the page that the server refused the key (or wants one); dashboard.js shows the key form. */
export function unauthorized(message) {
  window.dispatchEvent(new CustomEvent('qwen:unauthorized', { detail: message }));
}
