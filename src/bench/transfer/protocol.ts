import {BugError, EnvironmentError, HpdError, ModelConfigError, NativeError, UsageError, VerificationError} from '../../errors.js'
import type {BenchTransferOptions} from './types.js'

/**
 * Messages between the orchestrator and the two worker processes (Node IPC channel). Binary
 * blobs (agent metadata, digests) travel as base64.
 */
export type WorkerRole = 'prefill' | 'decode'

export interface AgentAnnouncement {
  readonly rank: number
  readonly metadata: string
  /** Region id of each shared tensor, [tensorIndex]. */
  readonly regionIds: readonly number[]
}

export type ToWorker =
  | {readonly type: 'init'; readonly role: WorkerRole; readonly options: BenchTransferOptions}
  | {readonly type: 'connect'; readonly peers: readonly AgentAnnouncement[]}
  | {readonly type: 'fill'; readonly caseIndex: number; readonly request: number; readonly digests: boolean}
  | {
      readonly type: 'read'
      readonly caseIndex: number
      readonly request: number
      readonly digests?: readonly string[]
      /** [pair] the prefill rank's grant for that pair's reads (null: nothing to read). */
      readonly grants?: readonly (string | null)[]
    }
  | {readonly type: 'close'}

export interface ReadReport {
  /** Wall time on the decode worker's event loop, first post to last promise settled. */
  readonly latencyMs: number
  /** Longest pair, post to completion on the agents' progress threads (no event-loop delivery). */
  readonly transferMs: number
  /** The memcpy reference, measured like transferMs. */
  readonly copyMs: number
  readonly bytes: number
  readonly runs: number
  readonly verifiedBytes: number
}

export type FromWorker =
  | {readonly type: 'ready'; readonly agents: readonly AgentAnnouncement[]; readonly registrationMs: number}
  | {readonly type: 'connected'; readonly handshakeMs: number; readonly prepareMs: number; readonly readProtocol?: 'get' | 'served' | 'mixed'}
  | {readonly type: 'filled'; readonly digests?: readonly string[]; readonly grants: readonly (string | null)[]}
  | {readonly type: 'read-done'; readonly report: ReadReport}
  | {readonly type: 'error'; readonly error: SerializedError}

export interface SerializedError {
  readonly kind: string
  readonly code: string
  readonly message: string
  readonly hint?: string
  readonly details?: Record<string, unknown>
}

export function serializeError(error: unknown): SerializedError {
  if (error instanceof HpdError) {
    return {kind: error.constructor.name, code: error.code, message: error.message, ...(error.hint ? {hint: error.hint} : {}), ...(error.details ? {details: {...error.details}} : {})}
  }
  const e = error as {code?: string; message?: string}
  return {kind: 'BugError', code: typeof e?.code === 'string' ? e.code : 'HPD_BUG', message: String(e?.message ?? error)}
}

const KINDS: Record<string, typeof HpdError> = {UsageError, ModelConfigError, EnvironmentError, NativeError, VerificationError, BugError, TransportError: NativeError}

export function deserializeError(e: SerializedError, extraDetails: Record<string, unknown> = {}): HpdError {
  const Kind = KINDS[e.kind] ?? (e.code.startsWith('HPD_NATIVE_') ? NativeError : BugError)
  return new Kind(e.code, e.message, {...(e.hint ? {hint: e.hint} : {}), details: {...e.details, ...extraDetails}})
}
