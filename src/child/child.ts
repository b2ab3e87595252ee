import {HpdError} from '../errors.js'
import {errorToJson} from './error-json.js'
import {errorLine, readyLine} from './lines.js'

export interface RunChildOptions<Ready> {
  /** Does the child's work up to "ready"; its result is the ready payload. Rejects: the child fails. */
  readonly start: () => Promise<Ready>
  /** Releases what start made (bounded by `stopGraceMs`); called once, whatever stops the child. */
  readonly stop?: (why: string) => Promise<void> | void
  /** How long stop may take before the process exits anyway. */
  readonly stopGraceMs?: number
}

let stopping = false

/**
 * The child side of the kit: runs `start`, prints the ready line, and exits (after `stop`) on
 * SIGTERM/SIGINT, when its stdin closes or its IPC channel disconnects (the parent is gone: the
 * lifeline). A failure of `start` is printed as the error line and exits with its exit code.
 */
export function runChild<Ready>(o: RunChildOptions<Ready>): void {
  const shutdown = async (why: string, code = 0) => {
    if (stopping) return
    stopping = true
    setTimeout(() => process.exit(code), o.stopGraceMs ?? 2000).unref()
    await Promise.resolve(o.stop?.(why)).catch(() => undefined)
    process.exit(code)
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
  process.stdin.on('end', () => void shutdown('parent gone'))
  process.stdin.on('error', () => void shutdown('parent gone'))
  process.stdin.resume()
  process.on('disconnect', () => void shutdown('parent gone'))
  o.start().then(
    (payload) => {
      if (!stopping) process.stdout.write(readyLine(payload))
    },
    (error: unknown) => failChild(error),
  )
}

/** Reports `error` to the parent (the error line) and exits with its exit code. */
export function failChild(error: unknown): never {
  process.stderr.write(errorLine(errorToJson(error)))
  process.exit(error instanceof HpdError ? error.exitCode : 1)
}

/** Messages to the parent over the IPC channel (dropped once it is gone). */
export function sendToParent(message: unknown): void {
  if (process.connected) process.send?.(message)
}

export function onParentMessage(listener: (message: unknown) => void): void {
  process.on('message', listener)
}
