/**
 * A worker's own GenerationBackend: what its OpenAI routes run, per vLLM's disaggregation
 * contract (kv-contract.ts), on this worker's engine.
 *
 * - no kv_transfer_params: prefill and decode here (the colocated path);
 * - prefill leg (`do_remote_decode`): compute N−1 prompt tokens, hold the blocks under a lease, and
 *   answer with the kv_transfer_params of the decode leg (null for a one-token prompt: nothing to
 *   transfer);
 * - decode leg (`do_remote_prefill` with the prefill answer's fields): pull the cache from that
 *   (registered) prefill engine, recompute the last prompt token, decode;
 * - a decode leg missing fields: computed here, logged and counted (as vLLM does).
 * A decode leg whose pull fails fails the request (`--kv-load-failure-policy fail`, the default)
 * or is computed here instead (`recompute`), logged and counted either way.
 */
import {HpdError} from '../../errors.js'
import {transferredTokens} from '../../layout/index.js'
import {errorEvent, ServeError, type BackendRequest, type GenerationBackend} from '../backend.js'
import {capacityShortfall, type CapacityShortfall, type KvGeometry, type PromptDemand} from '../kv-capacity.js'
import {kvParamsOf, type KvLeg} from '../kv-contract.js'
import type {WorkerStreamEvent} from '../protocol.js'
import type {DecodeRole} from './decode-role.js'
import type {PrefillRole} from './prefill-role.js'
import type {WorkerMetrics} from './worker-metrics.js'

export type KvLoadFailurePolicy = 'fail' | 'recompute'

/** Failures of the pull itself (before any token): what `recompute` recovers from. */
const PULL_FAILURES = new Set([
  'kv_transfer_failed',
  // --verify-transfers: the bytes arrived wrong; they are never served, and `recompute` computes the prompt here.
  'kv_verify_failed',
  'lease_lost',
  'grant_mismatch',
  'compatibility_mismatch',
  'protocol_mismatch',
  'engine_restarted',
  'unknown_prefill_engine',
  'unregistered_peer_url',
  'peer_not_authenticated',
  'worker_unreachable',
  'worker_connection_reset',
  'worker_timeout',
])

export interface LocalBackendOptions {
  readonly prefill: PrefillRole
  readonly decode: DecodeRole
  readonly failurePolicy: KvLoadFailurePolicy
  readonly metrics: WorkerMetrics
  /** This worker's pool as admission counts it. */
  readonly kvGeometry: () => KvGeometry
  readonly problem: () => string | undefined
  readonly log: (event: string, fields: Record<string, unknown>) => void
}

export class LocalBackend implements GenerationBackend {
  constructor(private readonly o: LocalBackendOptions) {}

  readiness(): {ready: boolean; reason?: string} {
    const problem = this.o.problem()
    return problem ? {ready: false, reason: problem} : {ready: true}
  }

  /** This worker's own pool: a prefill leg holds the transferred prompt, any other leg every continuation at full length. */
  capacityShortfall(demands: readonly PromptDemand[], leg: KvLeg['leg']): CapacityShortfall | undefined {
    return capacityShortfall([this.o.kvGeometry()], demands, leg === 'prefill' ? 'prefill' : 'decode')
  }

  async *generate(request: BackendRequest, signal: AbortSignal): AsyncIterable<WorkerStreamEvent> {
    const kv = request.kv ?? {leg: 'none' as const}
    const observe = this.o.metrics.follow(kv.leg === 'prefill' ? 0 : request.promptTokenIds.length)
    const watched = async function* (events: AsyncIterable<WorkerStreamEvent>) {
      for await (const ev of events) {
        observe(ev)
        yield ev
      }
    }
    if (kv.leg === 'prefill') {
      yield* watched(this.prefillLeg(request, signal))
      return
    }
    if (kv.leg === 'incomplete') {
      this.o.metrics.kvParamsIncomplete()
      this.o.log('kv-params-incomplete', {requestId: request.requestId, missing: kv.missing, action: 'computed locally'})
    }
    if (kv.leg !== 'decode') {
      yield* watched(this.run(request, signal))
      return
    }
    const local = {requestId: request.requestId, promptTokenIds: request.promptTokenIds, sampling: request.sampling}
    // The pull's failure shows before the first token: hold events back until the transfer is done.
    let transferred = false
    for await (const ev of this.run({...local, transfer: kv.transfer}, signal)) {
      if (!transferred && ev.type === 'error' && PULL_FAILURES.has(ev.code)) {
        this.o.metrics.kvLoadFailed()
        this.o.log('kv-load-failed', {requestId: request.requestId, prefillEngine: kv.transfer.engineId, code: ev.code, message: ev.message, policy: this.o.failurePolicy})
        if (this.o.failurePolicy === 'recompute' && !signal.aborted) {
          yield* watched(this.run({...local, requestId: `${request.requestId}.recompute`}, signal))
          return
        }
      }
      if (ev.type === 'transfer-done') transferred = true
      observe(ev)
      yield ev
      if (ev.type === 'done' || ev.type === 'error') return
    }
  }

  /**
   * The prefill leg: N−1 tokens computed and leased; the decode leg's params as the answer. It
   * waits for blocks when the pool is full now; `signal` (the caller gone) cancels it at once.
   */
  private async *prefillLeg(request: BackendRequest, signal: AbortSignal): AsyncGenerator<WorkerStreamEvent> {
    const tokens = transferredTokens(request.promptTokenIds.length)
    if (tokens === 0) {
      // Nothing to transfer (a one-token prompt): a decode leg without params computes the prompt.
      yield {type: 'prefilled', cachedTokens: 0}
      yield {type: 'kv-params', params: null}
    } else {
      this.o.metrics.countPrompt(tokens)
      let transfer
      try {
        ;({transfer} = await this.o.prefill.prefill({requestId: request.requestId, promptTokenIds: request.promptTokenIds}, signal))
      } catch (error) {
        // A full pool is the worker's state, not the request's fault: the caller may try another.
        if (error instanceof HpdError && error.code === 'HPD_ENGINE_POOL_FULL') throw new ServeError(503, 'kv_pool_full', error.message)
        throw error
      }
      yield {type: 'prefilled', cachedTokens: transfer.cachedTokens ?? 0}
      yield {type: 'kv-params', params: kvParamsOf(transfer)}
    }
    yield {type: 'done', finishReason: 'length', numOutputTokens: 0}
  }

  /** DecodeRole's emitted events as an async stream, ending with its 'done' or 'error'. */
  private run(request: Parameters<DecodeRole['generate']>[0], signal: AbortSignal): AsyncGenerator<WorkerStreamEvent> {
    const queue: WorkerStreamEvent[] = []
    let wake: (() => void) | undefined
    let finished = false
    const push = (ev: WorkerStreamEvent) => {
      queue.push(ev)
      wake?.()
    }
    try {
      this.o.decode.admit(request.requestId)
    } catch (error) {
      const e = error as ServeError
      return (async function* () {
        yield errorEvent(e)
      })()
    }
    void this.o.decode.generate(request, push, signal).finally(() => {
      finished = true
      wake?.()
    })
    return (async function* () {
      for (;;) {
        while (queue.length > 0) {
          const ev = queue.shift()!
          yield ev
          if (ev.type === 'done' || ev.type === 'error') return
        }
        if (finished) throw new ServeError(500, 'worker_error', `request ${request.requestId} ended without a final event`)
        await new Promise<void>((resolve) => (wake = resolve))
        wake = undefined
      }
    })()
  }
}
