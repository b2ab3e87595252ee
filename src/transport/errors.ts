import {NativeError, UsageError} from '../errors.js'

/** What a transport error names, so a user (and a log) can tell which link failed doing what. */
export interface TransportErrorDetails {
  readonly [key: string]: unknown
  /** The peer agent's name ("prefill-r1"), when the failure concerns one. */
  readonly peer?: string
  /** "read" | "copy" | "notify" | "connect" | "keepalive" | "timeout" | ... */
  readonly operation: string
  /** The agent that saw it. */
  readonly agent: string
}

const HINTS: Readonly<Record<string, string>> = {
  HPD_NATIVE_PEER_UNREACHABLE:
    'The peer process died or its endpoint failed; restart it and reconnect with its fresh metadata.',
  HPD_NATIVE_TIMEOUT:
    'The peer stopped answering within the deadline; check that it is alive and progressing (a stopped process is never detected otherwise).',
  HPD_NATIVE_NO_MEMORY: 'Free space in /dev/shm (`df -h /dev/shm`) or raise shared memory limits (`ipcs -l`).',
  HPD_NATIVE_UNSUPPORTED: 'Both ends must run the same hpd and UCX versions.',
  HPD_NATIVE_CLOSED: 'The agent was closed; create a new one.',
  HPD_NATIVE_PERMISSION_DENIED:
    'The owner serves only what it granted: pass the grant it issued for this request (read(..., {grant})) and read only its ranges; a revoked grant, or one over a freed region, is refused.',
}

/**
 * A failure of the transfer agent: native status code (HPD_NATIVE_*), exit code 5, and
 * `details` naming the peer and the operation.
 */
export class TransportError extends NativeError {
  readonly peer: string | undefined
  readonly operation: string

  constructor(code: string, message: string, details: TransportErrorDetails, cause?: unknown) {
    super(code, message, {hint: HINTS[code] ?? 'Run `hpd doctor` to check UCX and the native addon.', details, cause})
    this.peer = details.peer
    this.operation = details.operation
  }
}

/**
 * Converts an error thrown or rejected by the native layer. `callSite` is an Error captured
 * before the native call, so the stack points at the caller and not at the event loop.
 */
export function fromNative(err: unknown, details: TransportErrorDetails, callSite?: Error): TransportError {
  const e = err as {code?: unknown; message?: unknown; operation?: unknown}
  const code = typeof e?.code === 'string' && e.code.startsWith('HPD_NATIVE_') ? e.code : 'HPD_NATIVE_INTERNAL'
  const message = typeof e?.message === 'string' ? e.message : String(err)
  const operation = typeof e?.operation === 'string' ? e.operation : details.operation
  const out = new TransportError(code, `${details.agent}: ${message}`, {...details, operation}, err)
  if (callSite?.stack) out.stack = `${out.name}: ${out.message}\n${callSite.stack.split('\n').slice(1).join('\n')}`
  return out
}

export function invalidArgument(name: string, expected: string, got: unknown): UsageError {
  const shown = typeof got === 'bigint' ? `${got}n` : typeof got === 'string' ? JSON.stringify(got) : String(got)
  return new UsageError('HPD_TRANSPORT_INVALID_ARGUMENT', `expected ${expected} for ${name}, got ${shown} (${typeof got})`, {
    hint: 'This is a caller error in code using src/transport; see src/transport/README.md.',
  })
}
