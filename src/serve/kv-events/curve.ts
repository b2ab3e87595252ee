/**
 * KV events carry every prompt's token ids, so by default they are encrypted and only holders of
 * the cluster token can subscribe: the publisher is a CurveZMQ server whose long-term key pair is
 * derived from the token (HKDF-SHA256), and a subscriber must know the server's public key to even
 * complete the handshake (CurveZMQ never sends it in clear). hpd's router derives it from the same
 * token. Consumers that cannot speak CURVE (vLLM's own subscriber, llm-d, Dynamo) need the worker's
 * `--kv-events-plain`, on a network trusted with prompts.
 */
import {createPrivateKey, createPublicKey, hkdfSync} from 'node:crypto'

/** Z85 text (ZeroMQ RFC 32), as ZeroMQ's CURVE socket options take keys. */
export interface CurveServerKeys {
  readonly secretKey: string
  readonly publicKey: string
}

/** PKCS#8 prefix of a raw X25519 private key (RFC 8410). */
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex')

/** The KV-event publisher's CURVE key pair of a cluster (the same on every worker and the router). */
export function kvEventCurveKeys(clusterToken: string): CurveServerKeys {
  const secretKey = Buffer.from(hkdfSync('sha256', clusterToken, 'hpd-kv-events', 'curve25519 server key v1', 32))
  const privateKey = createPrivateKey({key: Buffer.concat([X25519_PKCS8_PREFIX, secretKey]), format: 'der', type: 'pkcs8'})
  const jwk = createPublicKey(privateKey).export({format: 'jwk'})
  return {secretKey: z85(secretKey), publicKey: z85(Buffer.from(jwk.x!, 'base64url'))}
}

const Z85 = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#'

/** Z85-encodes `bytes` (a multiple of 4 long): each 4 bytes, big-endian, as 5 base-85 digits. */
export function z85(bytes: Buffer): string {
  let out = ''
  for (let i = 0; i < bytes.length; i += 4) {
    let value = bytes.readUInt32BE(i)
    let chunk = ''
    for (let d = 0; d < 5; d++) {
      chunk = Z85[value % 85] + chunk
      value = Math.floor(value / 85)
    }
    out += chunk
  }
  return out
}
