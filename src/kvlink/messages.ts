import {protocolError} from './errors.js'

/**
 * The link's small messages, sent as transfer-agent notifications (≤ 4096 bytes):
 *
 *   hpd-read-done:<expected>:<requestId>   reader → owner: "I read my part of the request"
 *   hpd-freed:<requestId>                  owner → reader: "its blocks are free now" (only to
 *                                          readers the owner connected back to, e.g. the bench)
 *
 * `expected` is how many read-done notifications the request brings in all (one per (reader
 * agent, owner agent) pair that read anything, vLLM's "<id>:<tp>" in spirit): the owner frees the
 * request once it has them all, so no reader's read races another's free. Request ids are the
 * control plane's (1..256 characters, `:` allowed), so they come last.
 */
export const READ_DONE_PREFIX = 'hpd-read-done:'
export const FREED_PREFIX = 'hpd-freed:'
const MAX_ID_CHARS = 256

export type LinkMessage =
  | {readonly kind: 'read-done'; readonly requestId: string; readonly expected: number}
  | {readonly kind: 'freed'; readonly requestId: string}

export function readDoneMessage(requestId: string, expected: number): string {
  return `${READ_DONE_PREFIX}${expected}:${checkId(requestId)}`
}

export function freedMessage(requestId: string): string {
  return `${FREED_PREFIX}${checkId(requestId)}`
}

/** The link message in a notification, undefined when it is none (other traffic may share the agent). */
export function parseLinkMessage(text: string): LinkMessage | undefined {
  if (text.startsWith(READ_DONE_PREFIX)) {
    const rest = text.slice(READ_DONE_PREFIX.length)
    const colon = rest.indexOf(':')
    const expected = Number(rest.slice(0, colon))
    const requestId = rest.slice(colon + 1)
    if (colon < 1 || !Number.isSafeInteger(expected) || expected < 1 || requestId.length === 0 || requestId.length > MAX_ID_CHARS) {
      throw protocolError(`read-done notification "${text.slice(0, 80)}"`)
    }
    return {kind: 'read-done', requestId, expected}
  }
  if (text.startsWith(FREED_PREFIX)) return {kind: 'freed', requestId: text.slice(FREED_PREFIX.length)}
  return undefined
}

function checkId(requestId: string): string {
  if (requestId.length === 0 || requestId.length > MAX_ID_CHARS) throw protocolError(`request id of ${requestId.length} characters (1..${MAX_ID_CHARS})`)
  return requestId
}
