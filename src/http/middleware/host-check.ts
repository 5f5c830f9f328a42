/**
 * The Host allowlist, against DNS rebinding: a web page on evil.example can make its own name resolve to
 * 127.0.0.1 and then read a loopback-bound API as same-origin; its requests still carry `Host: evil.example`.
 * So a server bound to a loopback address answers only names that cannot be rebound (localhost,
 * *.localhost, as Vite's dev server does) and IP literals (rebinding needs a name); bound elsewhere it is
 * reached by names it cannot know (service names, load balancers) and answers any, unless
 * --allowed-hosts lists them.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { AllowedHosts } from '../../config/config.js';
import { HostNotAllowedError } from '../../errors.js';
import { rateLimited } from '../../log.js';
import { requestIdOf } from './request-context.js';

export interface HostPolicy {
  /** Whether a Host header's value (port included, as sent) may be answered. */
  allows(host: string): boolean;
  /** What the policy is, for the 403's message. */
  readonly describe: string;
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** Whether a listen address is a loopback one (127.0.0.0/8, ::1, localhost). */
export function isLoopback(address: string): boolean {
  const a = address.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (a === 'localhost') return true;
  if (isIPv4(a)) return LOOPBACK.check(a, 'ipv4');
  if (isIPv6(a)) return LOOPBACK.check(a, 'ipv6') || /^::ffff:127\./.test(a);
  return false;
}

/** The name in a Host header without its port; `ip` for an IP literal (v4, or [v6]); undefined if malformed. */
export function hostName(host: string): { name: string; ip: boolean } | undefined {
  const m = /^(\[[^\]]*\]|[^:[\]]*)(?::\d*)?$/.exec(host.trim().toLowerCase());
  if (!m || m[1] === '') return undefined;
  const name = m[1]!;
  if (name.startsWith('[')) return isIPv6(name.slice(1, -1)) ? { name, ip: true } : undefined;
  return { name, ip: isIPv4(name) };
}

export function hostPolicy(allowed: AllowedHosts, boundTo: string): HostPolicy {
  if (allowed === '*' || (allowed === 'auto' && !isLoopback(boundTo))) {
    return { allows: (host) => hostName(host) !== undefined, describe: 'any host' };
  }
  const names = allowed === 'auto' ? ['localhost', '.localhost'] : allowed;
  const exact = new Set(names.map((n) => n.replace(/^\./, '')));
  const suffixes = names.filter((n) => n.startsWith('.'));
  const describe =
    allowed === 'auto'
      ? `auto: the server listens on the loopback address ${boundTo}, so it answers only localhost, *.localhost and IP addresses`
      : `${names.join(', ')} and IP addresses`;
  return {
    allows(host) {
      const h = hostName(host);
      return h !== undefined && (h.ip || exact.has(h.name) || suffixes.some((s) => h.name.endsWith(s)));
    },
    describe,
  };
}

/** How often a refused Host is logged at most (a rebinding page retries in a loop). */
const WARN_INTERVAL_MS = 60_000;

/** Refuses (403) a request whose Host the policy does not allow, or an HTTP/1.1 request without one. */
export function hostCheck(policy: HostPolicy, log: Logger): RequestHandler {
  const warn = rateLimited(WARN_INTERVAL_MS);
  return (req, _res, next) => {
    const host = req.headers.host;
    // HTTP/1.0 may omit Host; a request without one names nothing that could have been rebound.
    if (host === undefined ? req.httpVersion === '1.0' : policy.allows(host)) return next();
    const shown = host === undefined ? undefined : host.slice(0, 100);
    warn((suppressed) =>
      log.warn(
        { host: shown, requestId: requestIdOf(req), suppressed },
        'refused a request whose Host header --allowed-hosts does not allow (DNS rebinding guard)',
      ),
    );
    next(
      new HostNotAllowedError(
        host === undefined
          ? 'An HTTP/1.1 request must carry a Host header.'
          : `The Host header ${JSON.stringify(shown)} is not allowed (--allowed-hosts is ${policy.describe}); ` +
            'to serve this name, add it to --allowed-hosts (QWEN_ALLOWED_HOSTS).',
      ),
    );
  };
}
