/**
 * Where hpd may listen without credentials: loopback only. A router or worker bound to any other
 * address must have the cluster token (--auth-token-file / HPD_AUTH_TOKEN), unless the operator
 * says --insecure, knowingly.
 */
import {isIP} from 'node:net'

import {UsageError} from '../errors.js'

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  if (h === 'localhost' || h === '::1') return true
  return isIP(h) === 4 && h.startsWith('127.')
}

export function checkBind(what: string, flag: string, host: string, hasToken: boolean, insecure: boolean): void {
  if (isLoopback(host) || hasToken || insecure) return
  throw new UsageError('HPD_AUTH_REQUIRED', `${what} would listen on ${host} (${flag}) with no cluster token: anyone who reaches it could read KV cache memory and drive its workers`, {
    hint: 'Give the cluster token with --auth-token-file F (or HPD_AUTH_TOKEN), or pass --insecure to run unauthenticated knowingly.',
    details: {flag, host},
  })
}
