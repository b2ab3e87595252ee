/**
 * The control protocol between the router and the workers (loopback HTTP + JSON; token streams as
 * NDJSON). Every message type lives here so both ends agree by construction; README.md draws the
 * sequence. Bump PROTOCOL_VERSION when a field changes meaning.
 */
import {createHash} from 'node:crypto'

import type {KvGeometry} from './kv-capacity.js'

/**
 * 2: the handshake's `transport` is the KV link's LinkInfo and "read done" says how many to expect (src/kvlink).
 * 3: prefix caching — a decode worker skips the attention reads of tokens it holds and tells the
 * prefill side so when it asks for digests (`cachedTokens`); a 2 prefill worker would digest reads
 * the decode side did not make.
 * 4: the decode side's first lease call confirms its params: the grant is required, and the block
 * ids and a digest of the transferred prompt tokens must be the lease's (shared-memory reads are
 * one-sided, so this is where a decode leg naming another request's blocks is refused).
 * 5: the confirm claims the lease for the confirming leg (its answer's `claim` goes on every later
 * lease call; others get 409), returns the prefill side's cached-token count, and the decode side
 * re-confirms right before its read.
 */
export const PROTOCOL_VERSION = 5

/** The transferred prompt tokens, as the prefill and decode sides compare them (hex of SHA-256 over int32 LE). */
export function promptDigest(tokenIds: readonly number[]): string {
  return createHash('sha256').update(Int32Array.from(tokenIds)).digest('hex').slice(0, 32)
}

export type WorkerRole = 'prefill' | 'decode' | 'colocated'

/**
 * Sampling parameters a decode (or colocated) worker applies, as vLLM's SamplingParams define them;
 * temperature 0 = greedy. The optional fields are absent when neutral (older routers send none).
 */
export interface SamplingParams {
  readonly temperature: number
  readonly topP: number
  readonly topK: number
  readonly seed: number | undefined
  readonly maxTokens: number
  readonly ignoreEos: boolean
  /** 0..1; 0 = off. */
  readonly minP?: number
  /** −2..2; 0 = off. */
  readonly presencePenalty?: number
  /** −2..2; 0 = off. */
  readonly frequencyPenalty?: number
  /** (0, 2]; 1 = off. */
  readonly repetitionPenalty?: number
  /** token id (decimal string) → bias −100..100 added to its logit. */
  readonly logitBias?: Readonly<Record<string, number>>
  /** Tokens generated before EOS or a stop token id may end the sequence. */
  readonly minTokens?: number
  /** Sampling one of these ends the sequence with 'stop' (the token is part of the output). */
  readonly stopTokenIds?: readonly number[]
  /** Return log-probabilities: the sampled token's and this many most likely (0..MAX_LOGPROBS). */
  readonly logprobs?: number
  /**
   * Continuations of the prompt (OpenAI n): one prefill, then the cache is copied for each;
   * continuation j samples with seed + j.
   */
  readonly n?: number
}

/**
 * What a prefill worker hands back after computing N−1 prompt tokens: everything a decode worker
 * needs to pull the request's cache (vLLM's kv_transfer_params, reference §5.2 step 3).
 */
export interface TransferParams {
  /** Prefill engine id: stable for the life of that worker process. */
  readonly engineId: string
  /** Changes when the prefill engine restarts, so a decode worker refreshes cached metadata. */
  readonly engineEpoch: string
  /** Control URL of the prefill worker: GET `${handshakeUrl}/v1/internal/metadata` is the handshake. */
  readonly handshakeUrl: string
  readonly requestId: string
  /** Logical block ids per KV-cache group, in group order. */
  readonly blockIds: readonly (readonly number[])[]
  readonly tpSize: number
  readonly compatibilityHash: string
  /** Tokens whose cache the prefill side computed (N−1 for every model: the last token is recomputed on decode). */
  readonly numComputedTokens: number
  /** Wall-clock ms (Date.now()) when the prefill side frees the blocks unless extended or released. */
  readonly leaseExpiresAtMs: number
  /** Leading prompt tokens the prefill side found in its prefix cache (it computed only the rest). */
  readonly cachedTokens?: number
  /**
   * Served reads only: the capability the prefill agent checks every piece against (hex). It
   * covers exactly this request's blocks and dies with its lease.
   */
  readonly grant?: string
}

/** Router → prefill worker. */
export interface PrefillRequest {
  readonly requestId: string
  readonly promptTokenIds: readonly number[]
}

export interface PrefillResponse {
  readonly transfer: TransferParams
  readonly prefillMs: number
}

/** Router → decode worker (disaggregated) or colocated worker (transfer absent). */
export interface GenerateRequest {
  readonly requestId: string
  readonly promptTokenIds: readonly number[]
  readonly sampling: SamplingParams
  readonly transfer?: TransferParams
}

/** Supervisor / registry → decode worker: the prefill engines it may contact (POST /v1/internal/peers). */
export interface PeersRequest {
  readonly peers: readonly {readonly engineId: string; readonly controlUrl: string}[]
}

/** Decode worker → prefill worker, while the request waits for local blocks (reference §5.2 step 9). */
export interface LeaseRequest {
  readonly requestId: string
  /** The grant from the transfer params: must be the lease's own (see PrefillRole.extend). */
  readonly grant?: string
  /** The decode side's first call: the params' block ids, which must be the lease's. */
  readonly blockIds?: readonly (readonly number[])[]
  /** The decode side's first call: promptDigest() of its first N−1 prompt tokens, which must be what was prefilled. */
  readonly promptDigest?: string
  /** Every call after the confirm: the claim it answered (a claimed lease takes no other caller's calls). */
  readonly claim?: string
  /**
   * Release only, from hpd's router: the request that made this lease is over (its client left, a
   * sibling prompt failed, its decode worker died), so the lease goes even if a decode leg claimed
   * it. Decode workers never send it: they release on a leg's behalf, and a leg may not free
   * another leg's lease.
   */
  readonly abandon?: true
}

export interface LeaseExtendResponse {
  readonly leaseExpiresAtMs: number
  /** The confirm's answer: the claim the confirming leg presents on every later lease call. */
  readonly claim?: string
  /** The confirm's answer: prompt tokens the prefill side served from its prefix cache (the leg's usage reports this, not the params' copy). */
  readonly cachedTokens?: number
}

/**
 * Decode worker → prefill worker, with `--verify-transfers`, after the read and before "read
 * done": the prefill side's digests of the request's reads by a decode engine of `decodeTp` ranks.
 */
export interface DigestsRequest {
  readonly requestId: string
  readonly decodeTp: number
  /** The decode side's prefix-cache hit: it skipped the attention reads of these leading tokens. */
  readonly cachedTokens?: number
  /** The grant from the transfer params: must be the lease's own (as for lease calls). */
  readonly grant?: string
}

export interface DigestsResponse {
  /** Per (decode rank, prefill rank) pair, base64 u64 digests in the KV link's canonical read order (src/kvlink/verify.ts). */
  readonly pairs: unknown
}

/** One NDJSON line of a worker's token stream. */
export type WorkerStreamEvent =
  /** Where the request is; 'queued' (repeated every few seconds): waiting for KV blocks (the pool is full now). */
  | {readonly type: 'phase'; readonly phase: 'queued' | 'handshake' | 'transfer' | 'decode'; readonly atMs: number}
  /**
   * The prompt's cache is in place (computed here, or pulled): `cachedTokens` of its tokens were
   * served from a prefix cache rather than computed — this worker's own hit, or, for a pulled
   * prompt, the prefill side's (what the prefill leg answered as cached_tokens). Responses report
   * it as usage.prompt_tokens_details.cached_tokens.
   */
  | {readonly type: 'prefilled'; readonly cachedTokens: number}
  | {
      readonly type: 'transfer-done'
      readonly handshakeMs: number
      readonly transferMs: number
      readonly bytes: number
      readonly reads: number
      /** Leading tokens the decode side held already (prefix cache): their attention blocks were not read. */
      readonly cachedTokens?: number
    }
  | {
      readonly type: 'token'
      readonly tokenId: number
      /** Which continuation (0..n−1); absent = 0. */
      readonly index?: number
      /** With sampling.logprobs: the token's log-probability and the most likely tokens'. */
      readonly logprob?: number
      readonly top?: readonly {readonly tokenId: number; readonly logprob: number}[]
    }
  /** Continuation `index` ended (sent for every continuation when n > 1; 'done' still ends the stream). */
  | {readonly type: 'finish'; readonly index: number; readonly finishReason: FinishReason; readonly numOutputTokens: number}
  /**
   * The prefill leg of vLLM's disaggregation contract ended: the `kv_transfer_params` the decode leg
   * must carry (null: nothing to transfer, the decode side computes the prompt itself).
   */
  | {readonly type: 'kv-params'; readonly params: Record<string, unknown> | null}
  /** The request ended: with n = 1 its only continuation's finish; with n > 1 after every 'finish'. */
  | {readonly type: 'done'; readonly finishReason: FinishReason; readonly numOutputTokens: number}
  | {readonly type: 'error'; readonly code: string; readonly message: string; readonly status: number; readonly param?: string}

export type FinishReason = 'stop' | 'length' | 'abort'

/** GET /v1/internal/health on a worker. */
export interface WorkerHealth {
  /** false: the worker cannot serve as it is (`problem` says why; e.g. leaked KV blocks). */
  readonly ok: boolean
  readonly problem?: string
  readonly role: WorkerRole
  readonly engineId: string
  readonly engineEpoch: string
  readonly tpSize: number
  readonly compatibilityHash: string
}

/** GET /v1/internal/stats on a worker: the dashboard's per-worker row. */
export interface WorkerStats {
  readonly role: WorkerRole
  readonly engineId: string
  /** Same meaning as WorkerHealth.ok / problem. */
  readonly ok: boolean
  readonly problem?: string
  readonly inFlight: number
  readonly kvBlocksUsed: number
  readonly kvBlocksTotal: number
  /** How the pool sizes requests (routers refuse what no worker could ever hold; ./kv-capacity.ts). Absent from older workers. */
  readonly kvGeometry?: KvGeometry
  /** Blocks committed to admitted requests at full length, and requests waiting for blocks. */
  readonly kvBlocksCommitted?: number
  readonly kvQueued?: number
  readonly leasesHeld: number
  readonly leasesExpired: number
  readonly leasesReleased: number
  readonly transferBytes: number
  readonly transferMs: number
  readonly handshakes: number
  readonly decodeBatchMax: number
  /** Calls refused for a missing or wrong cluster token since the worker started. */
  readonly refusedUnauthenticated: number
  /** --verify-transfers: transfers verified, and the milliseconds verifying took in all. */
  readonly verifiedTransfers?: number
  readonly verifyMs?: number
  /** The worker's KV-event publisher (ZeroMQ PUB, vLLM's KVEventBatch), when it has one: what routers subscribe to. */
  readonly kvEvents?: {readonly endpoint: string; readonly topic: string; readonly encryption: 'curve' | 'none'}
}

/** The handshake payload a prefill worker serves (reference §5.1: hash checked before anything else). */
export interface HandshakePayload {
  readonly protocolVersion: number
  readonly compatibilityHash: string
  readonly engineId: string
  readonly engineEpoch: string
  readonly tpSize: number
  /**
   * What the decode engine needs to reach this engine's cache, opaque to the protocol (JSON):
   * the transfer agent's metadata blob, its region ids per (rank, tensor), its pool size.
   */
  readonly transport: unknown
}

/** What a worker reports as ready (the child-process kit's ready line) once it accepts control traffic. */
export interface WorkerReadyLine {
  readonly role: WorkerRole
  readonly controlUrl: string
  readonly engineId: string
  readonly pid: number
}

export const INTERNAL = {
  health: '/v1/internal/health',
  stats: '/v1/internal/stats',
  metadata: '/v1/internal/metadata',
  leaseExtend: '/v1/internal/lease/extend',
  leaseRelease: '/v1/internal/lease/release',
  digests: '/v1/internal/digests',
  peers: '/v1/internal/peers',
} as const
