import {NativeError, VerificationError, type ErrorDetails} from '../errors.js'

/**
 * The KV link's typed errors. A peer that speaks another format (another hpd version, or not a
 * link at all) is a native-layer failure (exit 5, as HPD_NATIVE_UNSUPPORTED); bytes that arrived
 * different from the owner's are a verification failure (exit 6). Messages name the field or the
 * read at fault, never memory contents.
 */
export const KVLINK_CODES = {
  /** The handshake payload is malformed or does not match the engine it claims to describe. */
  badHandshake: 'HPD_KVLINK_BAD_HANDSHAKE',
  /** A link message (notification, digest answer) is malformed. */
  protocol: 'HPD_KVLINK_PROTOCOL',
  /** The owner does not hold the request (never held, already read, or its lease ended). */
  unknownRequest: 'HPD_KVLINK_UNKNOWN_REQUEST',
  /** The digest of bytes read differs from the owner's digest of the same bytes. */
  digestMismatch: 'HPD_KVLINK_DIGEST_MISMATCH',
} as const

export function badHandshake(field: string, expected: string, details: ErrorDetails = {}): NativeError {
  return new NativeError(KVLINK_CODES.badHandshake, `the peer's KV-link handshake has a bad ${field}: expected ${expected}`, {
    hint: 'Both ends must run the same hpd version (and the same model and layout options).',
    details: {field, ...details},
  })
}

export function protocolError(what: string, details: ErrorDetails = {}): NativeError {
  return new NativeError(KVLINK_CODES.protocol, `malformed KV-link message: ${what}`, {
    hint: 'Both ends must run the same hpd version.',
    details,
  })
}

export function unknownRequest(requestId: string): NativeError {
  return new NativeError(KVLINK_CODES.unknownRequest, `the KV owner does not hold request ${requestId}: it was never held, was already read, or its lease ended`, {
    hint: 'Verify before reporting the request read; a lease shorter than the transfer frees the blocks first.',
    details: {requestId},
  })
}

export function digestMismatch(message: string, details: ErrorDetails): VerificationError {
  return new VerificationError(KVLINK_CODES.digestMismatch, message, {
    hint: 'The bytes the decode side holds are not the bytes the prefill side has: the request is not served. Check the transport, the read plan, and the owner freeing blocks early.',
    details,
  })
}
