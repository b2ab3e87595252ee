import {Command, Interfaces} from '@oclif/core'

import {HpdError, toHpdError} from '../errors.js'

export const SCHEMA_VERSION = 1

export interface SuccessEnvelope<T> {
  readonly ok: true
  readonly command: string
  readonly schemaVersion: typeof SCHEMA_VERSION
  readonly result: T
  readonly warnings: readonly string[]
}

export interface ErrorEnvelope {
  readonly ok: false
  readonly command: string
  readonly schemaVersion: typeof SCHEMA_VERSION
  readonly error: ReturnType<HpdError['toJSON']>
}

/**
 * Base of every hpd command. The value `run()` returns *is* the `--json` result: it is wrapped in
 * one envelope on stdout. Anything thrown becomes a typed HpdError: with `--json` an error envelope
 * on stdout, otherwise a two-line message (error + hint) on stderr; the process exit code is the
 * error's documented exit code. Stack traces appear only with HPD_DEBUG=1 and only for bugs.
 */
export abstract class HpdCommand<T> extends Command {
  static override enableJsonFlag = true

  private readonly collectedWarnings: string[] = []

  /** Command id as a user types it, e.g. "inspect-layout" or "bench transfer". */
  protected get commandName(): string {
    return (this.id ?? this.constructor.name).replaceAll(':', ' ')
  }

  /** Record a warning: printed to stderr now, and listed in the JSON envelope. */
  protected addWarning(message: string): void {
    this.collectedWarnings.push(message)
    if (!this.jsonEnabled()) process.stderr.write(`warning: ${message}\n`)
  }

  /** Progress and logs go to stderr so stdout carries only the result. */
  protected info(message: string): void {
    if (!this.jsonEnabled()) process.stderr.write(`${message}\n`)
  }

  /** Writes the human-readable result to stdout (never used with --json). */
  protected print(text: string): void {
    if (!this.jsonEnabled()) process.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
  }

  abstract override run(): Promise<T>

  /** JSON goes straight to stdout, uncoloured, so scripts can parse it whatever the terminal. */
  override logJson(json: unknown): void {
    process.stdout.write(`${JSON.stringify(json, jsonReplacer, 2)}\n`)
  }

  protected override toSuccessJson(result: unknown): SuccessEnvelope<unknown> {
    return {ok: true, command: this.commandName, schemaVersion: SCHEMA_VERSION, result, warnings: [...this.collectedWarnings]}
  }

  protected override toErrorJson(err: unknown): ErrorEnvelope {
    return {ok: false, command: this.commandName, schemaVersion: SCHEMA_VERSION, error: toHpdError(err).toJSON()}
  }

  protected override async catch(err: Interfaces.CommandError): Promise<void> {
    const error = toHpdError(err)
    process.exitCode = error.exitCode
    if (this.jsonEnabled()) {
      this.logJson(this.toErrorJson(error))
      return
    }
    process.stderr.write(formatErrorForHumans(error))
  }
}

export function formatErrorForHumans(error: HpdError): string {
  const lines = [`error ${error.code}: ${error.message}`]
  if (error.hint) lines.push(`hint: ${error.hint}`)
  if (process.env.HPD_DEBUG && error.stack) lines.push(error.stack)
  return `${lines.join('\n')}\n`
}

/** bigint (addresses, large byte counts) serialize as decimal strings. */
function jsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value
}
