import {BugError, EnvironmentError, HpdError, ModelConfigError, NativeError, UsageError, VerificationError} from '../errors.js'

/**
 * An HpdError as JSON, for crossing a process boundary in either direction (a child's failure to
 * its parent, a parent's reason to stop to its child, a peer's error over a socket). The class
 * travels by name, so the exit code survives; messages and hints travel as they are (they never
 * carry file contents or memory, by the errors' own rule).
 */
export interface ErrorJson {
  /** The HpdError subclass name (TransportError travels as NativeError's kind). */
  readonly kind: string
  readonly code: string
  readonly message: string
  readonly hint?: string
  readonly details?: Record<string, unknown>
}

const KINDS: Readonly<Record<string, new (code: string, message: string, options?: ConstructorParameters<typeof HpdError>[2]) => HpdError>> = {
  UsageError,
  ModelConfigError,
  EnvironmentError,
  NativeError,
  VerificationError,
  BugError,
  TransportError: NativeError,
}

/** Anything thrown → ErrorJson; a non-HpdError keeps its `code` when it has one (HPD_NATIVE_* as a NativeError, others as a BugError). */
export function errorToJson(error: unknown): ErrorJson {
  if (error instanceof HpdError) {
    return {
      kind: error.constructor.name,
      code: error.code,
      message: error.message,
      ...(error.hint ? {hint: error.hint} : {}),
      ...(error.details ? {details: {...error.details}} : {}),
    }
  }
  const e = error as {code?: unknown; message?: unknown; hint?: unknown} | undefined
  const code = typeof e?.code === 'string' ? e.code : 'HPD_BUG'
  return {
    // A native status that escaped untyped is still a native failure (exit 5), as toHpdError says.
    kind: code.startsWith('HPD_NATIVE_') ? 'NativeError' : 'BugError',
    code,
    message: String(e?.message ?? error),
    ...(typeof e?.hint === 'string' ? {hint: e.hint} : {}),
  }
}

/** ErrorJson → the HpdError it was (its class by `kind`; HPD_NATIVE_* codes of unknown kinds stay native). */
export function errorFromJson(e: ErrorJson, extraDetails: Record<string, unknown> = {}): HpdError {
  const Kind = KINDS[e.kind] ?? (String(e.code).startsWith('HPD_NATIVE_') ? NativeError : BugError)
  const details = {...e.details, ...extraDetails}
  return new Kind(String(e.code), String(e.message), {...(e.hint ? {hint: String(e.hint)} : {}), ...(Object.keys(details).length > 0 ? {details} : {})})
}

/** A well-formed ErrorJson, or undefined (a line or message from elsewhere). */
export function asErrorJson(v: unknown): ErrorJson | undefined {
  const o = v as Partial<ErrorJson> | null
  return typeof o === 'object' && o !== null && typeof o.code === 'string' && typeof o.message === 'string' && typeof o.kind === 'string' ? (o as ErrorJson) : undefined
}
