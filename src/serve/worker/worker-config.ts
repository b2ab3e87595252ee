/** The configuration the supervisor hands a worker process (one JSON argument: `--config <json>`). */
import type {WorkerRole} from '../protocol.js'

export interface WorkerConfig {
  readonly name: string
  readonly role: WorkerRole
  /** Preset name (e.g. "tiny-hybrid") or a model directory. */
  readonly model: string
  readonly tp: number
  /** Context length: control messages longer than this are refused. */
  readonly maxModelLen: number
  /** TP of the other side (decode TP on a prefill worker, prefill TP on a decode worker). */
  readonly peerTp: number
  readonly transport: 'auto' | 'shm' | 'tcp'
  readonly host: string
  readonly leaseMs: number
  /** Longest a prefill lease may be held, extensions included. */
  readonly maxLeaseMs: number
  readonly maxBatch: number
  /** KV blocks per rank in this worker's pool (undefined: the engine's default). */
  readonly kvBlocks?: number
  readonly handshakeTimeoutMs: number
  readonly transferTimeoutMs: number
  readonly pauseBeforeReadMs?: number
}
