/**
 * The seam between the router (HTTP, OpenAI shapes, text) and whatever produces tokens
 * (disaggregated prefill+decode workers, or colocated workers). Only token ids cross it.
 */
import type {CapacityShortfall, PromptDemand} from './kv-capacity.js'
import type {KvLeg} from './kv-contract.js'
import type {SamplingParams, WorkerStreamEvent} from './protocol.js'

export interface BackendRequest {
  readonly requestId: string
  readonly promptTokenIds: readonly number[]
  readonly sampling: SamplingParams
  /** On a worker: the disaggregation leg the request's kv_transfer_params ask for (absent: none). */
  readonly kv?: KvLeg
}

export interface GenerationBackend {
  /**
   * Streams the request's events. Throws a ServeError (with its HTTP status) when no worker can
   * take the request; aborting `signal` cancels it on the workers too.
   */
  generate(request: BackendRequest, signal: AbortSignal): AsyncIterable<WorkerStreamEvent>
  /** Whether the router should accept traffic, and if not, why (shown in 503 bodies and /health). */
  readiness(): {readonly ready: boolean; readonly reason?: string}
  /**
   * Why the request (its prompts, each with its n continuations at full length) could never be
   * held by the KV pools that would serve it, or undefined when it could (or nothing is known of
   * the pools yet). `leg`: the disaggregation leg it asks of a worker ('none' from clients).
   */
  capacityShortfall?(demands: readonly PromptDemand[], leg: KvLeg['leg']): CapacityShortfall | undefined
}

/** Text ↔ token ids for the router. Implemented over the model's tokenizer (src/model). */
export interface ServeTokenizer {
  /** Token ids of `text`, with the tokenizer's special tokens (BOS) unless addSpecialTokens is false. */
  encode(text: string, options?: {readonly addSpecialTokens?: boolean}): number[]
  /** Applies the model's chat template and tokenizes the result. */
  encodeChat(messages: readonly {role: string; content: string}[]): number[]
  /** Text of token ids (special tokens dropped): echo of token-id prompts, POST /detokenize. */
  decode(tokenIds: readonly number[]): string
  /** Incremental detokenizer: returns the text that became final with this token (UTF-8 safe). */
  createDecoder(): {push(tokenId: number): string; flush(): string}
}

/** A failure with an HTTP status the router returns as an OpenAI error body. */
export class ServeError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The request field at fault, where one is (OpenAI's `param`: e.g. `kv_transfer_params.remote_block_ids`). */
    readonly param?: string,
  ) {
    super(message)
  }
}

/** Seconds a client is asked to wait before retrying a 503 (the workers are busy or restarting, not the request at fault). */
export const RETRY_AFTER_S = 1

/** A failure as the stream event that ends a worker's NDJSON answer (the router turns it back into a ServeError). */
export function errorEvent(e: ServeError): WorkerStreamEvent {
  return {type: 'error', code: e.code, message: e.message, status: e.status, ...(e.param ? {param: e.param} : {})}
}

/** The model as the router and supervisor see it (resolved from --model by serve-model.ts). */
export interface ServeModel {
  /** The id clients pass as `model`. */
  readonly name: string
  /** Directory with config.json + safetensors + tokenizer, handed to every worker. */
  readonly dir: string
  readonly tokenizer: ServeTokenizer
  readonly maxModelLen: number
  readonly vocabSize: number
}
