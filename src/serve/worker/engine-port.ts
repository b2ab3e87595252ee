/**
 * What a worker process needs from the engine, the transfer agent and the layout engine, in one
 * interface. `engine-binding.ts` implements it over src/engine + src/transport + src/layout; unit
 * tests of the worker logic implement it in memory. Block ids are logical, per KV-cache group.
 */
import type {PrefixCacheEvent, PrefixCacheStats} from '../../engine/prefix-cache.js'
import type {KvGeometry} from '../kv-capacity.js'
import type {HandshakePayload, SamplingParams, TransferParams} from '../protocol.js'
import type {ServeTokenizer} from '../backend.js'
import type {ProtocolLimits} from '../protocol-schema.js'

export type GroupBlockIds = readonly (readonly number[])[]

/** An established link to one prefill engine (all its ranks), from one handshake. */
export interface PeerLink {
  readonly engineId: string
  readonly engineEpoch: string
  close(): Promise<void> | void
}

export interface PullResult {
  readonly bytes: number
  /** Batched reads issued: one per (decode rank, prefill rank) pair. */
  readonly reads: number
  /** With `verify`: digesting both sides and comparing (the prefill side's answer included). */
  readonly verifyMs?: number
}

export interface PullOptions {
  /**
   * Leading tokens this engine holds already (its prefix-cache hit, from `allocate`): their
   * attention reads are skipped; the state is read whatever it is.
   */
  readonly cachedTokens?: number
  /**
   * Verify the transfer (`--verify-transfers`): fetches the prefill side's digests of the
   * request's reads for a decode engine of `decodeTp` ranks (opaque JSON, as `transferDigests`
   * returns it); a mismatch rejects the pull with HPD_KVLINK_DIGEST_MISMATCH (a VerificationError).
   */
  readonly verify?: (decodeTp: number) => Promise<unknown>
}

export interface DecodeEntry {
  readonly requestId: string
  /** The token this step feeds (the last prompt token on the first step after a transfer). */
  readonly tokenId: number
}

/** A sampled token; logprob and top are present when the sequence's sampling asked for logprobs. */
export interface SampledToken {
  readonly tokenId: number
  readonly logprob?: number
  readonly top?: readonly {readonly tokenId: number; readonly logprob: number}[]
}

export interface WorkerEngine {
  readonly engineId: string
  readonly tpSize: number
  readonly compatibilityHash: string
  readonly eosTokenId: number
  /** Context length and vocabulary: every control message is checked against them. */
  readonly limits: ProtocolLimits
  /** The model's tokenizer, for the worker's own OpenAI routes. */
  readonly tokenizer: ServeTokenizer
  kvUsage(): {readonly usedBlocks: number; readonly totalBlocks: number}
  /** What a sequence of n tokens holds at most, and what requests may be admitted against (../kv-capacity.ts). */
  kvGeometry(): KvGeometry
  /** Leading prompt tokens a request found in the prefix cache when it was allocated (0 without prefix caching). */
  cachedTokens?(requestId: string): number
  /** Prefix-cache counts (undefined: prefix caching off). */
  prefixCacheStats?(): PrefixCacheStats | undefined
  /** Prefix-cache blocks stored and removed, as they happen (the worker's KV events). */
  onCacheEvent?(listener: (event: PrefixCacheEvent) => void): void

  // ── prefill side ──
  /**
   * Computes the cache of `tokenIds` (the first N−1 prompt tokens) and keeps its blocks; returns
   * them, and the capability (grant id) a reader must present to have those blocks served (served
   * reads check every piece against it). Revoke the grant before freeing the blocks.
   */
  prefillForTransfer(requestId: string, tokenIds: readonly number[]): Promise<{readonly blockIds: GroupBlockIds; readonly grant: string; readonly cachedTokens?: number}>
  /** Ends the request's transfer: its grant is revoked (call before freeing its blocks; idempotent). */
  endTransfer(requestId: string): void
  /** Transfer metadata served in the handshake (JSON; the decode engine's connect() reads it). */
  transportInfo(): unknown
  /** Every reader of a request reported it read (the KV link's "read done"): its blocks may go. */
  onReadDone(listener: (requestId: string) => void): void
  /** This side's digests of a held request's reads by a decode engine of `decodeTp` ranks (JSON). */
  transferDigests(requestId: string, decodeTp: number, cachedTokens?: number): Promise<unknown>

  // ── decode side ──
  /**
   * Allocates blocks for a transferred request whose first `tokenIds.length` tokens will be
   * pulled, sharing the attention blocks the prefix cache holds of them (`cachedTokens`: the pull
   * skips those). Null when the pool is full now.
   */
  allocate(requestId: string, tokenIds: readonly number[]): {readonly blockIds: GroupBlockIds; readonly cachedTokens: number} | null
  connect(handshake: HandshakePayload): Promise<PeerLink>
  /** Runs the layout engine's read plan for the request: one batched read per (decode rank, prefill rank). */
  pull(peer: PeerLink, local: GroupBlockIds, remote: TransferParams, timeoutMs: number, options?: PullOptions): Promise<PullResult>
  /** Tells the prefill engine (the KV link's "read done") that it may free `requestId` (its id there). */
  readDone(peer: PeerLink, requestId: string): Promise<void>
  /** Adopts the pulled cache as request state holding `numTokens` tokens. */
  adopt(requestId: string, numTokens: number): void

  // ── colocated ──
  /**
   * Full local prefill of the prompt (in chunks, interleaved with other requests' steps), then
   * its cache copied into `forks` (further continuations of the same prompt, n > 1); returns the
   * first sampled token of the request and of each fork, in that order, or the Error that failed
   * that one alone. Every sequence's sampler must be open (openSequence). The blocks of the
   * request and its forks are allocated by this call: whoever calls it frees them (free() is a
   * no-op for unknown ids), also when it throws.
   */
  prefillLocal(requestId: string, tokenIds: readonly number[], forks: readonly string[]): Promise<readonly (SampledToken | Error)[]>

  // ── both ──
  /**
   * Opens the sampler of a sequence: its parameters, the prompt its repetition penalty counts, and
   * which continuation of the request it is (n > 1: continuation j samples the stream of seed + j,
   * computed exactly). Lives until free(requestId).
   */
  openSequence(requestId: string, promptTokenIds: readonly number[], sampling: SamplingParams, continuation?: number): void
  /** Copies a request's cache into new requests `childIds` (n > 1 after a transfer); all or nothing. */
  fork(requestId: string, childIds: readonly string[]): void
  /**
   * One continuous-batching step: feeds one token per request, returns each request's next
   * sampled token, or the Error that failed that request alone (its sampling, its blocks); the
   * others' tokens are unaffected. Throws only when the step as a whole failed.
   */
  decodeStep(entries: readonly DecodeEntry[]): Promise<readonly (SampledToken | Error)[]>
  /** Frees the request's blocks and sampler (a queued prefill of it is dropped). No-op for unknown ids. */
  free(requestId: string): void
  close(): Promise<void>
}
