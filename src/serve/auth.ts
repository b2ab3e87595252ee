/**
 * Credentials of the control plane and the public API.
 *
 * Cluster token: every internal call is signed with it, and every answer proves the server holds
 * it too; the token itself never crosses the wire. A caller sends
 *   X-HPD-Auth: v1 <unix ms> <nonce, 32 hex> <HMAC-SHA256(token, "hpd-v1\n" ts "\n" nonce "\n" METHOD "\n" path)>
 * and the worker answers with
 *   X-HPD-Auth-Proof: <HMAC-SHA256(token, "hpd-v1-proof\n" nonce)>.
 * So a sniffer on the network cannot learn the token (and signatures older than ±5 minutes are
 * refused), and a stranger registered in a shared etcd, or named in forged
 * transfer params, learns nothing when a worker contacts it and cannot answer as a cluster member.
 * (Bodies are not encrypted: run the control plane on a private network, as NIXL/UCX data is.)
 *
 * API key: the public API's `Authorization: Bearer <key>`, as vLLM's --api-key. Secrets are
 * compared in constant time (over SHA-256 digests, so lengths leak nothing either) and never
 * travel on argv, where `ps` shows them (secrets.ts).
 */
import {createHash, createHmac, randomBytes, timingSafeEqual} from 'node:crypto'

export const AUTH_HEADER = 'x-hpd-auth'
export const PROOF_HEADER = 'x-hpd-auth-proof'

/** Environment variable carrying the cluster token to worker processes (and from the user). */
export const CLUSTER_TOKEN_ENV = 'HPD_AUTH_TOKEN'

/** Environment variable carrying the public API key (instead of --api-key-file). */
export const API_KEY_ENV = 'HPD_API_KEY'

/** How far a signed call's clock may be from the worker's (hosts keep time with NTP). */
export const SIGNATURE_WINDOW_MS = 5 * 60_000

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

function mac(token: string, text: string): string {
  return createHmac('sha256', token).update(text).digest('base64url')
}

/** The X-HPD-Auth value for one call, and the nonce its answer's proof must cover. */
export function signCall(token: string, method: string, path: string, nowMs = Date.now()): {header: string; nonce: string} {
  const nonce = randomBytes(16).toString('hex')
  return {header: `v1 ${nowMs} ${nonce} ${mac(token, `hpd-v1\n${nowMs}\n${nonce}\n${method.toUpperCase()}\n${path}`)}`, nonce}
}

/** Whether an answer's X-HPD-Auth-Proof shows the server holds the token. */
export function proofMatches(token: string, nonce: string, proof: string | null | undefined): boolean {
  return typeof proof === 'string' && tokensEqual(proof, mac(token, `hpd-v1-proof\n${nonce}`))
}

export type Verdict = {readonly ok: true; readonly proof: string} | {readonly ok: false; readonly why: string}

/**
 * Checks signed calls on a worker: the signature and the clock window. Nonces are not remembered:
 * within the window a captured call could be replayed, but a sniffer that captured it also saw its
 * answer in clear (bodies are not encrypted); what signing buys is that the token never travels.
 */
export class CallVerifier {
  constructor(
    private readonly token: string,
    private readonly windowMs = SIGNATURE_WINDOW_MS,
    private readonly nowMs: () => number = Date.now,
  ) {}

  verify(header: string | string[] | undefined, method: string, path: string): Verdict {
    if (typeof header !== 'string') return {ok: false, why: 'unsigned'}
    const parts = header.split(' ')
    if (parts.length !== 4 || parts[0] !== 'v1' || !/^\d{1,15}$/.test(parts[1]) || !/^[0-9a-f]{32}$/.test(parts[2])) return {ok: false, why: 'malformed signature'}
    const [, tsText, nonce, sig] = parts
    const ts = Number(tsText)
    if (!tokensEqual(sig, mac(this.token, `hpd-v1\n${ts}\n${nonce}\n${method.toUpperCase()}\n${path}`))) return {ok: false, why: 'bad signature'}
    if (Math.abs(this.nowMs() - ts) > this.windowMs) return {ok: false, why: 'signature outside the clock window'}
    return {ok: true, proof: mac(this.token, `hpd-v1-proof\n${nonce}`)}
  }
}
