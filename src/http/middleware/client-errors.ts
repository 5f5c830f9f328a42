/**
 * What Node's HTTP parser refuses before a request exists (a malformed request line or header, headers
 * over 16 KB, a client too slow to send them) is answered by Node with a bare status line and no body.
 * This answers it like every other error: the OpenAI error shape with a stable code, the right status
 * and `Connection: close`. Hostile traffic produces these at will: they are counted and logged at debug
 * level only.
 */
import { STATUS_CODES, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { ApiError, ClientTimeoutError, HeadersTooLargeError, MalformedHttpError } from '../../errors.js';

/** How long an answered connection may stay open for the client to read the answer and close it. */
const LINGER_MS = 2_000;

interface ParserError extends Error {
  code?: string;
  reason?: string;
}

/** The error a parser failure reports to the client; undefined when there is no client left to tell. */
function clientErrorFor(err: ParserError): ApiError | undefined {
  switch (err.code) {
    case 'ECONNRESET':
    case 'EPIPE':
      return undefined;
    case 'HPE_HEADER_OVERFLOW':
      return new HeadersTooLargeError();
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new ClientTimeoutError();
    default:
      return new MalformedHttpError(`The request is not valid HTTP (${err.code ?? 'parse error'}${err.reason ? `: ${err.reason}` : ''}).`);
  }
}

/** A whole HTTP/1.1 response carrying the error, for a socket that has no ServerResponse. */
function rawResponse(err: ApiError): string {
  const body = JSON.stringify(err.toBody());
  const head = [
    `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? 'Error'}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...Object.entries(err.headers).map(([k, v]) => `${k}: ${v}`),
  ];
  return `${head.join('\r\n')}\r\n\r\n${body}`;
}

/**
 * Installs the server's 'clientError' handler. `counted` is told each error's code. A socket gets one
 * answer, only while it is writable, and never into a response under way: when a pipelined request fails
 * to parse behind one, the answer waits until that response has finished (writing now would corrupt it or
 * answer out of order).
 */
export function answerClientErrors(server: Server, log: Logger, counted: (code: string) => void): void {
  const answered = new WeakSet<Duplex>();
  server.on('clientError', (err: ParserError, socket: Duplex) => {
    // The parser reports every later chunk of a connection it gave up on again: answer once.
    if (answered.has(socket)) return;
    const apiError = clientErrorFor(err);
    if (apiError === undefined || !socket.writable) return void socket.destroy();
    answered.add(socket);
    counted(apiError.code);
    log.debug({ code: err.code, reason: err.reason, status: apiError.status }, 'refused a request Node could not parse');
    const answer = () => {
      if (!socket.writable) return void socket.destroy();
      // end(), not destroy(): closing with unread input would reset the connection and could lose the answer.
      socket.end(rawResponse(apiError));
      const linger = setTimeout(() => socket.destroy(), LINGER_MS).unref();
      socket.once('close', () => clearTimeout(linger));
    };
    // Node's own handler looks for the response under way through the same (undocumented) property.
    const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (inFlight && !inFlight.writableFinished) inFlight.once('finish', answer);
    else answer();
  });
}
