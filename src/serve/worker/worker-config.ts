/**
 * A worker's configuration: what the supervisor hands a worker process (one JSON argument:
 * `--config <json>`), and what `hpd worker` builds from its flags. No secrets here (the cluster
 * token travels in the environment).
 */
import type {StepSchedulerOptions} from '../../engine/step-scheduler.js'
import type {WorkerRole} from '../protocol.js'

export interface WorkerConfig {
  /** The engine id: unique in the cluster, stable across restarts (the epoch changes instead). */
  readonly name: string
  readonly role: WorkerRole
  /** Preset name (e.g. "tiny-hybrid") or a model directory. */
  readonly model: string
  /** The served model name (what clients pass as `model`; registered in etcd). */
  readonly modelName: string
  /**
   * `hpd worker --served-model-name`: further names its OpenAI routes accept (listed first by
   * /v1/models); `modelName` stays accepted, since hpd's router sends it on its legs.
   */
  readonly servedModelNames?: readonly string[]
  readonly tp: number
  /** Context length: control messages longer than this are refused. */
  readonly maxModelLen: number
  readonly transport: 'auto' | 'shm' | 'tcp'
  /** Address the control server (and the transfer agent) listen on. */
  readonly host: string
  /** Control port (0: any free one). */
  readonly port?: number
  /** `host:port` other hosts reach the control server at, when it differs from host:port (NAT, 0.0.0.0). */
  readonly advertise?: string
  readonly leaseMs: number
  /** Longest a prefill lease may be held, extensions included. */
  readonly maxLeaseMs: number
  readonly maxBatch: number
  /** KV blocks per rank in this worker's pool (undefined: the engine's default). */
  readonly kvBlocks?: number
  readonly handshakeTimeoutMs: number
  readonly transferTimeoutMs: number
  readonly pauseBeforeReadMs?: number
  /** Who may call the public OpenAI routes: 'signed' (the router; default) or 'open' (any client). */
  readonly publicAccess?: 'signed' | 'open'
  /** What a decode leg whose KV pull fails does: fail the request (default) or compute it here. */
  readonly kvLoadFailurePolicy?: 'fail' | 'recompute'
  /** Decode side: digest both sides of every transfer and fail a request whose digests differ. */
  readonly verifyTransfers?: boolean
  /** Register in etcd (and, on decode workers, learn the prefill engines from it). */
  readonly etcd?: {readonly urls: readonly string[]; readonly cluster: string}
  /** Chunked prefill: tokens per engine step and per long-prompt chunk (undefined: the engine's defaults). */
  readonly steps?: StepSchedulerOptions
  /** Prefix caching (default on, as vLLM V1; false: `--no-prefix-caching`). */
  readonly prefixCaching?: boolean
  /** Hybrids: a Mamba checkpoint at every k-th logical-block boundary (default 1; src/engine/README.md). */
  readonly mambaCheckpointEvery?: number
  /**
   * KV events (vLLM's KVEventBatch over ZeroMQ PUB, src/serve/kv-events/README.md): the endpoint
   * to bind, e.g. tcp://127.0.0.1:0 (0: any free port; the bound one is in /v1/internal/stats).
   * Undefined: no events published.
   */
  readonly kvEventsEndpoint?: string
  /**
   * Publish KV events in clear (vLLM's wire as it is, for llm-d / Dynamo / vLLM subscribers).
   * Otherwise they are CurveZMQ-encrypted with keys from the cluster token (kv-events/curve.ts),
   * plain only when the worker runs without a token (--insecure).
   */
  readonly kvEventsPlain?: boolean
}
