/**
 * The router's GenerationBackend over workers, speaking vLLM's disaggregation contract to them
 * (kv-contract.ts) as any proxy would, with hpd's signature on every call:
 * 1. the prefill leg: POST {prefill}/v1/completions with the prompt's token ids, max_tokens 1,
 *    stream false and `kv_transfer_params: {do_remote_decode: true, …}` on a prefill worker
 *    (round robin over healthy ones; a refused, dead, stalled or full one is skipped and the
 *    request fails over to the next); its answer's `kv_transfer_params` (null: nothing to move);
 * 2. the decode leg: POST {decode}/v1/completions with the same prompt, the sampling as request
 *    fields and those params, on the least-loaded decode worker (ties round robin), answered as
 *    the worker's events (`x-hpd-response: events`: token ids, logprobs by id, timings) since the
 *    router detokenizes and applies stop strings itself.
 * Colocated: the decode leg alone, without params, on the least-loaded colocated worker. A
 * prefill worker that dies while its cache is being pulled fails that request at once (process
 * exit or lost registration is seen immediately), independent of the transport's own timeout.
 *
 * Bounds: the prefill leg has its own (`prefillTimeoutMs`); a decode stream must deliver each
 * next event (its headers and first token included) within `streamIdleTimeoutMs`.
 *
 * Prefix-aware routing (`routing.policy` 'prefix', the default with prefix caching): each worker's
 * KV events (routing/kv-event-feed.ts) tell the router which prompt prefixes it holds; a worker's
 * score is `w · cached / prompt + (1 − w) · (1 − load / most load)` (w = `prefixWeight`, load =
 * this router's requests on it), the best wins, ties go round robin. Prefill and colocated workers
 * count the prefix they could resume from (a Mamba checkpoint at its end); decode workers the
 * attention blocks they hold (they always pull the final state). 'round-robin': as before.
 */
import {ServeError, type BackendRequest, type GenerationBackend} from './backend.js'
import {ControlClient, ndjsonLines, RESET, TIMEOUT, UNREACHABLE} from './http-json.js'
import {capacityShortfall, type CapacityShortfall, type KvGeometry, type PromptDemand} from './kv-capacity.js'
import {PREFILL_LEG_PARAMS} from './kv-contract.js'
import {bodyOfSampling} from './openai/sampling-body.js'
import {INTERNAL, type WorkerRole, type WorkerStreamEvent} from './protocol.js'
import {EVENTS_HEADER} from './router.js'
import type {PoolWorker, WorkerPool} from './worker-pool.js'
import type {KvEventFeed} from './routing/kv-event-feed.js'
import {promptHashes} from './routing/prefix-index.js'

export interface RoutingOptions {
  /** 'prefix': score by cached prefix and load; 'round-robin': prefill round robin, decode least loaded. */
  readonly policy: 'prefix' | 'round-robin'
  /** Weight of the cached-prefix fraction against load, 0..1 (1: prefix only; 0: load only). */
  readonly prefixWeight: number
}

export const DEFAULT_ROUTING: RoutingOptions = {policy: 'prefix', prefixWeight: 0.75}

export interface WorkerBackendOptions {
  readonly pool: WorkerPool
  /** The model name workers serve (what the legs carry as `model`). */
  readonly modelName: string
  readonly clusterToken: string | undefined
  readonly mode: 'disaggregated' | 'colocated'
  readonly prefillTimeoutMs: number
  /** Bound on the wait for each next event of a decode stream (first token included). */
  readonly streamIdleTimeoutMs: number
  readonly routing?: RoutingOptions
  /** The workers' KV events (prefix-aware routing); absent: round robin / least loaded. */
  readonly feed?: KvEventFeed
}

/** Prefill failures that say nothing about the request: the next prefill worker may take it. */
const FAIL_OVER = new Set([UNREACHABLE, RESET, TIMEOUT, 'kv_pool_full'])

export class WorkerBackend implements GenerationBackend {
  private nextPrefill = 0
  private nextTieBreak = 0
  private readonly assigned = new Map<string, number>()
  /** Prefill legs in flight per worker (this router's): the prefill side's load. */
  private readonly prefilling = new Map<string, number>()
  private readonly client: ControlClient
  /** Requests routed to a worker that held part of the prompt, and the prompt tokens it held. */
  prefixRouted = 0
  prefixRoutedTokens = 0

  constructor(private readonly o: WorkerBackendOptions) {
    this.client = new ControlClient(o.clusterToken)
  }

  readiness(): {ready: boolean; reason?: string} {
    const s = this.o.pool
    const roles = this.o.mode === 'colocated' ? (['colocated'] as const) : (['prefill', 'decode'] as const)
    const troubled = s.workers.filter((w) => w.state !== 'ready').map((w) => `${w.name} ${w.state}${w.problem ? ` (${w.problem})` : ''}`)
    const condition = s.condition()
    if (condition) troubled.unshift(condition)
    for (const role of roles) {
      if (s.ready(role).length === 0) {
        const states = s.workers.filter((w) => w.role === role).map((w) => `${w.name} ${w.state}${w.problem ? ` (${w.problem})` : ''}`)
        return {ready: false, reason: `no healthy ${role} worker (${states.length > 0 ? states.join(', ') : 'none registered'})${condition ? `; ${condition}` : ''}`}
      }
    }
    return troubled.length > 0 ? {ready: true, reason: `degraded: ${troubled.join(', ')}`} : {ready: true}
  }

  /**
   * The pools that would serve the request, from the workers' reported geometry: in disaggregated
   * mode the prefill pools hold each prompt once, the decode pools every continuation at full length.
   */
  capacityShortfall(demands: readonly PromptDemand[]): CapacityShortfall | undefined {
    // Only while every ready worker of the role has reported its pool (the first stats poll): until
    // then the workers refuse such a request themselves.
    const pools = (role: WorkerRole): KvGeometry[] => {
      const ready = this.o.pool.ready(role)
      return ready.every((w) => w.stats?.kvGeometry) ? ready.map((w) => w.stats!.kvGeometry!) : []
    }
    if (this.o.mode === 'colocated') return capacityShortfall(pools('colocated'), demands, 'decode')
    return capacityShortfall(pools('prefill'), demands, 'prefill') ?? capacityShortfall(pools('decode'), demands, 'decode')
  }

  async *generate(request: BackendRequest, signal: AbortSignal): AsyncIterable<WorkerStreamEvent> {
    const hashes = promptHashes(request.promptTokenIds)
    if (this.o.mode === 'colocated') {
      yield* this.decodeLeg(this.pickDecode('colocated', request.promptTokenIds, hashes), request, null, signal, undefined)
      return
    }
    const {worker: prefillWorker, params} = await this.prefillLeg(request, signal, hashes)
    // Until the decode side has read the prompt's blocks, this request owns the prefill lease: if
    // it ends before (a sibling prompt failed, the client left, no decode worker), the lease is
    // released now rather than left to expire with the blocks held.
    let read = params === null
    try {
      const decodeWorker = this.pickDecode('decode', request.promptTokenIds, hashes)
      for await (const ev of this.decodeLeg(decodeWorker, request, params, signal, params ? prefillWorker : undefined)) {
        if (ev.type === 'transfer-done') read = true
        yield ev
      }
    } finally {
      if (!read && params) this.releaseLease(prefillWorker, params)
    }
  }

  /** Best effort (the lease expires anyway): the decode side never read these blocks, so the prefill worker may free them. */
  private releaseLease(w: PoolWorker, params: Record<string, unknown>): void {
    const requestId = params.remote_request_id
    const grant = params.hpd_grant
    if (typeof requestId !== 'string' || !w.controlUrl) return
    // `abandon`: the request that made this lease is over, claimed by a decode leg or not.
    this.client.call(`${w.controlUrl}${INTERNAL.leaseRelease}`, {requestId, ...(typeof grant === 'string' ? {grant} : {}), abandon: true}, {timeoutMs: 2000}).catch(() => undefined)
  }

  private async prefillLeg(request: BackendRequest, signal: AbortSignal, hashes: (blockSize: number) => readonly bigint[]): Promise<{worker: PoolWorker; params: Record<string, unknown> | null}> {
    const tried: string[] = []
    const failures: PrefillFailure[] = []
    for (let attempt = 0; ; attempt++) {
      const candidates = this.o.pool.ready('prefill').filter((w) => !tried.includes(w.name))
      if (candidates.length === 0) throw exhausted(failures, this.readiness().reason)
      const w = this.byPrefix(candidates, request.promptTokenIds, hashes, 'usable', (c) => this.prefilling.get(c.name) ?? 0) ?? candidates[this.nextPrefill++ % candidates.length]
      tried.push(w.name)
      this.prefilling.set(w.name, (this.prefilling.get(w.name) ?? 0) + 1)
      try {
        const body = {model: this.o.modelName, prompt: request.promptTokenIds, max_tokens: 1, stream: false, kv_transfer_params: PREFILL_LEG_PARAMS}
        // Each attempt is its own request on the prefill side, so a late first attempt cannot collide with a retry.
        const requestId = attempt === 0 ? request.requestId : `${request.requestId}.p${attempt}`
        const answer = await this.client.call<{kv_transfer_params?: Record<string, unknown> | null}>(`${w.controlUrl}/v1/completions`, body, {
          timeoutMs: this.o.prefillTimeoutMs,
          signal,
          headers: {'x-request-id': requestId},
        })
        return {worker: w, params: answer.kv_transfer_params ?? null}
      } catch (error) {
        if (signal.aborted) throw signal.reason
        if (error instanceof ServeError && FAIL_OVER.has(error.code)) {
          failures.push({worker: w.name, code: error.code, message: error.message})
          this.o.pool.suspect(w, error.code)
          continue
        }
        throw error
      } finally {
        this.prefilling.set(w.name, (this.prefilling.get(w.name) ?? 1) - 1)
      }
    }
  }

  /** The decode (or colocated) worker: by cached prefix and load, or the least loaded. */
  private pickDecode(role: 'decode' | 'colocated', tokens: readonly number[], hashes: (blockSize: number) => readonly bigint[]): PoolWorker {
    const ready = this.o.pool.ready(role)
    const load = (w: PoolWorker) => this.assigned.get(w.name) ?? 0
    return this.byPrefix(ready, tokens, hashes, role === 'decode' ? 'attention' : 'usable', load) ?? this.leastLoaded(role)
  }

  /**
   * Prefix-aware choice among `candidates` (undefined: policy round robin, no events, or no
   * candidate holds any of the prompt — then the caller's usual choice applies).
   */
  private byPrefix(candidates: readonly PoolWorker[], tokens: readonly number[], hashes: (blockSize: number) => readonly bigint[], what: 'usable' | 'attention', load: (w: PoolWorker) => number): PoolWorker | undefined {
    const routing = this.o.routing ?? DEFAULT_ROUTING
    const feed = this.o.feed
    if (routing.policy !== 'prefix' || !feed || candidates.length === 0) return undefined
    feed.sync()
    const held = candidates.map((w) => {
      const m = feed.index.match(w.name, tokens, hashes)
      return what === 'usable' ? m.usableTokens : m.attentionTokens
    })
    if (held.every((h) => h === 0)) return undefined
    const loads = candidates.map(load)
    const most = Math.max(...loads)
    const w = routing.prefixWeight
    const scores = candidates.map((_c, i) => w * (held[i] / Math.max(1, tokens.length)) + (1 - w) * (most === 0 ? 1 : 1 - loads[i] / most))
    const best = Math.max(...scores)
    const tied = candidates.filter((_c, i) => scores[i] >= best - 1e-9)
    const chosen = tied[this.nextTieBreak++ % tied.length]
    const h = held[candidates.indexOf(chosen)]
    if (h > 0) {
      this.prefixRouted++
      this.prefixRoutedTokens += h
    }
    return chosen
  }

  /** The ready worker of `role` with the fewest requests from this router; ties go round robin. */
  private leastLoaded(role: 'decode' | 'colocated'): PoolWorker {
    const ready = this.o.pool.ready(role)
    if (ready.length === 0) throw new ServeError(503, 'no_healthy_worker', `no healthy ${role} worker can take the request: ${this.readiness().reason}`)
    const load = (w: PoolWorker) => this.assigned.get(w.name) ?? 0
    const least = Math.min(...ready.map(load))
    const tied = ready.filter((w) => load(w) === least)
    return tied[this.nextTieBreak++ % tied.length]
  }

  private async *decodeLeg(w: PoolWorker, request: BackendRequest, params: Record<string, unknown> | null, signal: AbortSignal, prefillWorker: PoolWorker | undefined): AsyncGenerator<WorkerStreamEvent> {
    const body = {model: this.o.modelName, prompt: request.promptTokenIds, ...bodyOfSampling(request.sampling), ...(params ? {kv_transfer_params: params} : {})}
    this.assigned.set(w.name, (this.assigned.get(w.name) ?? 0) + 1)
    const local = new AbortController()
    const onAbort = () => local.abort(signal.reason)
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, {once: true})
    // While the cache is being pulled, the prefill worker's death fails the request right away.
    let pulling = prefillWorker !== undefined
    const onState = (changed: PoolWorker) => {
      if (pulling && changed === prefillWorker && (changed.state === 'dead' || changed.state === 'stopped')) {
        const what = changed.problem ?? 'died'
        local.abort(new ServeError(502, 'prefill_worker_died', `prefill worker ${changed.name} ${what} while request ${request.requestId} was pulling its cache`))
      }
    }
    this.o.pool.on('state', onState)
    const idle = this.o.streamIdleTimeoutMs
    try {
      const res = await this.client.open(`${w.controlUrl}/v1/completions`, body, {timeoutMs: idle, signal: local.signal, headers: {[EVENTS_HEADER]: 'events', 'x-request-id': request.requestId}})
      if (!res.ok || !res.body) {
        const text = await withIdleTimeout(res.text(), idle, w.name, local.signal)
        const err = safeJson(text)?.error
        // The worker's refusal names the field at fault as the client sent it (the leg carries the client's fields).
        const param = typeof err?.param === 'string' ? err.param.slice(0, 200) : undefined
        throw new ServeError(res.status, err?.code ?? 'worker_error', err?.message ?? `decode worker ${w.name} answered ${res.status}`, param)
      }
      const lines = ndjsonLines<WorkerStreamEvent>(res.body)
      for (;;) {
        const next = await withIdleTimeout(lines.next(), idle, w.name, local.signal)
        if (next.done) throw new ServeError(502, 'worker_stream_ended', `worker ${w.name} ended the stream of ${request.requestId} without finishing it`)
        const ev = next.value
        if (ev.type === 'transfer-done') pulling = false
        yield ev
        if (ev.type === 'done' || ev.type === 'error') return
      }
    } catch (error) {
      if (local.signal.aborted && local.signal.reason instanceof ServeError) throw local.signal.reason
      if (error instanceof ServeError) {
        if (FAIL_OVER.has(error.code)) this.o.pool.suspect(w, error.code)
        throw error
      }
      throw new ServeError(502, 'worker_stream_failed', `the stream from worker ${w.name} failed: ${(error as Error).message}`)
    } finally {
      pulling = false
      this.o.pool.off('state', onState)
      signal.removeEventListener('abort', onAbort)
      // Closes the stream's connection if it is still open: the worker drops the request.
      if (!local.signal.aborted) local.abort(new ServeError(499, 'finished', 'request finished'))
      this.assigned.set(w.name, (this.assigned.get(w.name) ?? 1) - 1)
    }
  }
}

interface PrefillFailure {
  readonly worker: string
  readonly code: string
  readonly message: string
}

/**
 * Every prefill worker was tried: a 503 that says why. Workers whose pool is full or that did not
 * answer within the prefill bound are busy, not sick: 'kv_pool_full' / 'prefill_timeout' (the
 * router answers 503s with Retry-After); 'no_healthy_worker' only when none could be reached.
 */
function exhausted(failures: readonly PrefillFailure[], readiness: string | undefined): ServeError {
  const why = failures.length > 0 ? failures.map((f) => `${f.worker}: ${f.message}`).join('; ') : readiness
  if (failures.some((f) => f.code === 'kv_pool_full')) return new ServeError(503, 'kv_pool_full', `every prefill worker's KV pool is full now, retry later: ${why}`)
  if (failures.length > 0 && failures.every((f) => f.code === TIMEOUT)) return new ServeError(503, 'prefill_timeout', `no prefill worker finished the prompt within the prefill bound (busy), retry later: ${why}`)
  return new ServeError(503, 'no_healthy_worker', `no healthy prefill worker can take the request: ${why}`)
}

function safeJson(text: string): {error?: {code?: string; message?: string; param?: unknown}} | undefined {
  try {
    return JSON.parse(text) as {error?: {code?: string; message?: string; param?: unknown}}
  } catch {
    return undefined
  }
}

async function withIdleTimeout<T>(p: Promise<T>, ms: number, worker: string, signal: AbortSignal): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  let onAbort: (() => void) | undefined
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ServeError(504, TIMEOUT, `worker ${worker} sent nothing for ${ms} ms`)), ms)
        onAbort = () => reject(signal.reason)
        if (signal.aborted) onAbort()
        else signal.addEventListener('abort', onAbort, {once: true})
      }),
    ])
  } finally {
    clearTimeout(timer)
    if (onAbort) signal.removeEventListener('abort', onAbort)
  }
}
