/**
 * The two lines a child writes for its parent (one JSON object each):
 *   stdout  {"hpdReady": <payload>}     it is up; the payload is whatever the child reports
 *   stderr  {"hpdError": <ErrorJson>}   it failed (then it exits with the error's exit code)
 * Every other line is the child's own output (logs), passed to the parent's sink.
 */
import {asErrorJson, type ErrorJson} from './error-json.js'

export const READY_KEY = 'hpdReady'
export const ERROR_KEY = 'hpdError'

export function readyLine(payload: unknown): string {
  return `${JSON.stringify({[READY_KEY]: payload})}\n`
}

export function errorLine(error: ErrorJson): string {
  return `${JSON.stringify({[ERROR_KEY]: error})}\n`
}

/** The ready payload in a stdout line, or undefined. */
export function parseReady(line: string): {payload: unknown} | undefined {
  if (!line.startsWith(`{"${READY_KEY}"`)) return undefined
  try {
    return {payload: (JSON.parse(line) as Record<string, unknown>)[READY_KEY]}
  } catch {
    return undefined
  }
}

/** The error in a stderr line, or undefined. */
export function parseError(line: string): ErrorJson | undefined {
  if (!line.startsWith(`{"${ERROR_KEY}"`)) return undefined
  try {
    return asErrorJson((JSON.parse(line) as Record<string, unknown>)[ERROR_KEY])
  } catch {
    return undefined
  }
}
