import type {ErrorJson} from '../../child/index.js'
import type {LinkInfo} from '../../kvlink/index.js'
import type {GroupBlockIds} from '../../layout/index.js'

/**
 * Messages between the orchestrator and the two bench workers: over the child-process kit's IPC
 * channel for local workers, as NDJSON over an authenticated socket for a prefill side on another
 * host (remote.ts). Binary blobs (digests) travel as base64 inside the KV link's JSON.
 */
export type WorkerRole = 'prefill' | 'decode'

/** What a worker reports as ready: its engine's KV-link handshake. */
export interface WorkerReady {
  readonly link: LinkInfo
  /** Allocating (registering) every rank's tensors. */
  readonly registrationMs: number
  /** The host it runs on (os.hostname()). */
  readonly host: string
}

export type ToWorker =
  | {readonly type: 'connect'; readonly peer: LinkInfo}
  | {readonly type: 'fill'; readonly caseIndex: number; readonly request: number; readonly digests: boolean}
  | {
      readonly type: 'read'
      readonly caseIndex: number
      readonly request: number
      /** [owner agent] the prefill side's grant for this request. */
      readonly grants: readonly string[]
      /** --path serve: the prefill side's block ids of this request. */
      readonly prefillBlockIds?: GroupBlockIds
      /** --verify digest: the prefill side's digests (KV link wire form). */
      readonly digests?: unknown
    }
  /** The run is over; `error` says why when it failed (a remote prefill side exits with it). */
  | {readonly type: 'close'; readonly error?: ErrorJson}

export interface ReadReport {
  /** Wall time on the decode worker's event loop: --path serve includes planning and preparing lists. */
  readonly latencyMs: number
  /** Longest pair, post to completion on the agents' progress threads (no event-loop delivery). */
  readonly transferMs: number
  /** The memcpy reference, measured like transferMs. */
  readonly copyMs: number
  /** --path serve: planning the request and preparing (or selecting) its lists. */
  readonly prepareMs: number
  /** --verify digest: digesting both sides and comparing. */
  readonly verifyMs?: number
  readonly bytes: number
  readonly runs: number
  /** The layout's coalesced runs of this request's plan (the agent's merging must agree). */
  readonly plannedRuns: number
  readonly verifiedBytes: number
}

export type FromWorker =
  | {readonly type: 'connected'; readonly handshakeMs: number; readonly prepareMs: number; readonly readProtocol?: 'get' | 'served' | 'mixed'}
  | {readonly type: 'filled'; readonly grants: readonly string[]; readonly blockIds?: GroupBlockIds; readonly digests?: unknown}
  | {readonly type: 'read-done'; readonly report: ReadReport; readonly pairListPrepares?: number}
  | {readonly type: 'error'; readonly error: ErrorJson}
