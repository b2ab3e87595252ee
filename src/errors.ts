/**
 * The hpd error hierarchy. Every failure a user can meet is an HpdError with a stable
 * UPPER_SNAKE `code` (never reused for another meaning), a message naming the field or value
 * at fault, a `hint` saying what to do, and a documented process exit code:
 *
 *   1 bug · 2 usage · 3 model config · 4 environment · 5 native · 6 verification
 */
export type ErrorDetails = Readonly<Record<string, unknown>>

export interface HpdErrorOptions {
  readonly hint?: string
  readonly details?: ErrorDetails
  readonly cause?: unknown
}

export class HpdError extends Error {
  readonly code: string
  readonly hint: string | undefined
  readonly details: ErrorDetails | undefined
  readonly exitCode: number = 1

  constructor(code: string, message: string, options: HpdErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : {cause: options.cause})
    this.name = new.target.name
    this.code = code
    this.hint = options.hint
    this.details = options.details
  }

  toJSON(): {code: string; message: string; hint?: string; details?: ErrorDetails} {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint === undefined ? {} : {hint: this.hint}),
      ...(this.details === undefined ? {} : {details: this.details}),
    }
  }
}

/** A flag, argument or request the user got wrong. Exit 2. */
export class UsageError extends HpdError {
  override readonly exitCode = 2
}

/** A model config.json / preset / weights that cannot be used as given. Exit 3. */
export class ModelConfigError extends HpdError {
  override readonly exitCode = 3
}

/** The machine lacks something (GPU, RDMA, UCX transport, memlock, port). Exit 4. */
export class EnvironmentError extends HpdError {
  override readonly exitCode = 4
}

/** The native addon (UCX transport, kernels) reported a failure. Exit 5. */
export class NativeError extends HpdError {
  override readonly exitCode = 5
}

/** A transfer or computation produced bytes that do not match what they must be. Exit 6. */
export class VerificationError extends HpdError {
  override readonly exitCode = 6
}

/** Anything unexpected: a defect in hpd itself. Exit 1. */
export class BugError extends HpdError {
  override readonly exitCode = 1
}

export const EXIT_CODES = {
  bug: 1,
  usage: 2,
  modelConfig: 3,
  environment: 4,
  native: 5,
  verification: 6,
} as const

/** Turns anything thrown into an HpdError; unknown errors become BugError (exit 1). */
export function toHpdError(err: unknown): HpdError {
  if (err instanceof HpdError) return err
  const e = err as {message?: string; code?: string; oclif?: {exit?: number}} | undefined
  // oclif's own parse errors (unknown flag, missing value, failed option check) are usage errors.
  // A flag's own parse function (e.g. Flags.directory({exists: true})) throws a plain Error that
  // oclif prefixes with "Parsing --<flag>"; it is as much a usage error as an unknown flag.
  const flagParseFailure = err instanceof Error && /^Parsing --[\w-]+/u.test(err.message)
  if (flagParseFailure || (e && typeof e === 'object' && e.oclif && e.oclif.exit === 2)) {
    return new UsageError('HPD_USAGE', cleanOclifMessage(String(e?.message ?? err)), {
      hint: 'Run the command with --help to see its flags.',
      cause: err,
    })
  }
  if (e && typeof e === 'object' && typeof e.code === 'string' && e.code.startsWith('HPD_NATIVE_')) {
    return new NativeError(e.code, String(e.message), {cause: err, hint: 'Run `hpd doctor` to check UCX and the native addon.'})
  }
  const message = err instanceof Error ? err.message : String(err)
  return new BugError('HPD_BUG', message, {
    hint: 'This is a defect in hpd. Re-run with HPD_DEBUG=1 for a stack trace and report it.',
    cause: err,
  })
}

function cleanOclifMessage(message: string): string {
  // oclif appends "See more help with --help" on its own line; hpd puts that in the hint.
  return message.replace(/\n\s*See more help with --help\s*$/u, '').trim()
}
