/**
 * Credentials: the cluster token that guards every internal worker endpoint and the transfer
 * handshake, and the optional public API key. Both are compared in constant time (over SHA-256
 * digests, so lengths leak nothing either) and never travel on argv, where `ps` shows them.
 */
import {createHash, randomBytes, timingSafeEqual} from 'node:crypto'

/** Header a worker reads the cluster token from (Authorization stays free for the public API key). */
export const CLUSTER_TOKEN_HEADER = 'x-hpd-cluster-token'

/** Environment variable carrying the cluster token to worker processes (and from the user). */
export const CLUSTER_TOKEN_ENV = 'HPD_AUTH_TOKEN'

/** A fresh random cluster token (256 bits), for `hpd serve`'s local workers when none is given. */
export function generateClusterToken(): string {
  return randomBytes(32).toString('base64url')
}

export function tokensEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest()
  const b = createHash('sha256').update(expected).digest()
  return timingSafeEqual(a, b)
}

/** Whether an Authorization header carries `Bearer <expected>`. */
export function bearerMatches(header: string | undefined, expected: string): boolean {
  if (typeof header !== 'string') return false
  const m = /^Bearer\s+(.+)$/i.exec(header.trim())
  return m !== null && tokensEqual(m[1], expected)
}

/** Whether a request carries the cluster token. */
export function clusterTokenMatches(header: string | string[] | undefined, expected: string): boolean {
  return typeof header === 'string' && tokensEqual(header, expected)
}
