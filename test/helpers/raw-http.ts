/**
 * Requests exactly as written, for what a client library would normalize: the path as sent (case, slashes,
 * broken %-escapes), any method, a chosen Host header or none at all, and raw bytes on a socket.
 */
import http from 'node:http';
import net from 'node:net';

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Parsed JSON when the body is JSON, else the text. */
  body: any;
}

export interface RawRequest {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  /** Host header to send; null sends none. Default: 127.0.0.1:port. */
  host?: string | null;
  body?: unknown;
  agent?: http.Agent;
}

export function rawRequest(url: string, r: RawRequest): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  const body = r.body === undefined ? undefined : typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
  const headers: Record<string, string> = { ...(body !== undefined && { 'content-type': 'application/json' }), ...r.headers };
  if (r.host != null) headers.host = r.host;
  return new Promise((resolve, reject) => {
    const req = http.request(
      { hostname, port, method: r.method ?? 'GET', path: r.path, headers, setHost: r.host === undefined, agent: r.agent },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode!, headers: res.headers, body: parsed });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Writes `bytes` on a fresh connection and resolves with everything the server sent before it closed. */
export function rawExchange(url: string, bytes: string, timeoutMs = 5_000): Promise<{ text: string; closed: boolean }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, closed: false });
    }, timeoutMs);
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (text += d));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.write(bytes, 'latin1');
  });
}

/** Splits a raw HTTP/1.1 response into its status, headers (lower-cased) and body. */
export function parseRawResponse(text: string): { status: number; headers: Record<string, string>; body: string } {
  const end = text.indexOf('\r\n\r\n');
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const headers = Object.fromEntries(
    lines.map((l) => {
      const i = l.indexOf(':');
      return [l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim()];
    }),
  );
  return { status: Number(statusLine!.split(' ')[1]), headers, body: text.slice(end + 4) };
}
