/**
 * The router's GenerationBackend over worker processes. Disaggregated: prefill on a prefill
 * worker (round robin over healthy ones; a refused or dead one is skipped and the request fails
 * over to the next), then decode on the least-loaded decode worker, which pulls the cache.
 * Colocated: the whole request on the least-loaded colocated worker. A prefill worker that dies
 * while its cache is being pulled fails that request at once (process exit is seen immediately),
 * independent of the transport's own timeout.
 */
import {ServeError, type BackendRequest, type GenerationBackend} from './backend.js'
import {callJson, fetchBounded, ndjsonLines} from './http-json.js'
import {INTERNAL, type GenerateRequest, type PrefillResponse, type WorkerStreamEvent} from './protocol.js'
import type {ManagedWorker, Supervisor} from './supervisor.js'

export interface WorkerBackendOptions {
  readonly supervisor: Supervisor
  readonly mode: 'disaggregated' | 'colocated'
  readonly prefillTimeoutMs: number
  /** Bound on the wait for each next event of a decode stream (first token included). */
  readonly streamIdleTimeoutMs: number
}

export class WorkerBackend implements GenerationBackend {
  private nextPrefill = 0
  private readonly assigned = new Map<string, number>()

  constructor(private readonly o: WorkerBackendOptions) {}

  readiness(): {ready: boolean; reason?: string} {
    const s = this.o.supervisor
    const roles = this.o.mode === 'colocated' ? (['colocated'] as const) : (['prefill', 'decode'] as const)
    for (const role of roles) {
      if (s.ready(role).length === 0) {
        const states = s.workers.filter((w) => w.role === role).map((w) => `${w.name} ${w.state}`)
        return {ready: false, reason: `no healthy ${role} worker (${states.join(', ')})`}
      }
    }
    return {ready: true}
  }

  async *generate(request: BackendRequest, signal: AbortSignal): AsyncIterable<WorkerStreamEvent> {
    if (this.o.mode === 'colocated') {
      const w = this.leastLoaded('colocated')
      yield* this.stream(w, {...request}, signal, undefined)
      return
    }
    if (request.promptTokenIds.length < 2) {
      // Nothing to transfer (the prefill side computes N−1 = 0 tokens): decode prefills it locally.
      yield* this.stream(this.leastLoaded('decode'), {...request}, signal, undefined)
      return
    }
    const {worker: prefillWorker, response} = await this.prefill(request, signal)
    const decodeWorker = this.leastLoaded('decode')
    yield* this.stream(decodeWorker, {...request, transfer: response.transfer}, signal, prefillWorker)
  }

  private async prefill(request: BackendRequest, signal: AbortSignal): Promise<{worker: ManagedWorker; response: PrefillResponse}> {
    const tried: string[] = []
    for (;;) {
      const candidates = this.o.supervisor.ready('prefill').filter((w) => !tried.includes(w.name))
      if (candidates.length === 0) {
        const why = tried.length > 0 ? `prefill workers ${tried.join(', ')} failed` : this.readiness().reason
        throw new ServeError(503, 'no_healthy_worker', `no healthy prefill worker can take the request: ${why}`)
      }
      const w = candidates[this.nextPrefill++ % candidates.length]
      tried.push(w.name)
      try {
        const body = {requestId: request.requestId, promptTokenIds: request.promptTokenIds}
        const response = await callJson<PrefillResponse>(`${w.controlUrl}${INTERNAL.prefill}`, body, this.o.prefillTimeoutMs, signal)
        return {worker: w, response}
      } catch (error) {
        if (signal.aborted) throw signal.reason
        // Connection-level failures fail over; a request the worker refused is the request's fault.
        if (error instanceof ServeError && (error.code === 'worker_unreachable' || error.code === 'worker_timeout')) {
          this.o.supervisor.suspect(w)
          continue
        }
        throw error
      }
    }
  }

  private leastLoaded(role: 'decode' | 'colocated'): ManagedWorker {
    const ready = this.o.supervisor.ready(role)
    if (ready.length === 0) throw new ServeError(503, 'no_healthy_worker', `no healthy ${role} worker can take the request: ${this.readiness().reason}`)
    return ready.reduce((best, w) => ((this.assigned.get(w.name) ?? 0) < (this.assigned.get(best.name) ?? 0) ? w : best))
  }

  private async *stream(
    w: ManagedWorker,
    body: GenerateRequest,
    signal: AbortSignal,
    prefillWorker: ManagedWorker | undefined,
  ): AsyncGenerator<WorkerStreamEvent> {
    this.assigned.set(w.name, (this.assigned.get(w.name) ?? 0) + 1)
    const local = new AbortController()
    const onAbort = () => local.abort(signal.reason)
    signal.addEventListener('abort', onAbort, {once: true})
    // While the cache is being pulled, the prefill worker's death fails the request right away.
    let pulling = prefillWorker !== undefined
    const onState = (changed: ManagedWorker) => {
      if (pulling && changed === prefillWorker && (changed.state === 'dead' || changed.state === 'stopped')) {
        local.abort(new ServeError(502, 'prefill_worker_died', `prefill worker ${changed.name} died while request ${body.requestId} was pulling its cache`))
      }
    }
    this.o.supervisor.on('state', onState)
    try {
      const res = await fetchBounded(`${w.controlUrl}${INTERNAL.generate}`, body, this.o.streamIdleTimeoutMs, local.signal)
      if (!res.ok || !res.body) {
        const text = await res.text()
        const err = safeJson(text)?.error
        throw new ServeError(res.status, err?.code ?? 'worker_error', err?.message ?? `decode worker ${w.name} answered ${res.status}`)
      }
      const lines = ndjsonLines<WorkerStreamEvent>(res.body)
      for (;;) {
        const next = await withIdleTimeout(lines.next(), this.o.streamIdleTimeoutMs, w.name, local.signal)
        if (next.done) throw new ServeError(502, 'worker_stream_ended', `worker ${w.name} ended the stream of ${body.requestId} without finishing it`)
        const ev = next.value
        if (ev.type === 'transfer-done') pulling = false
        yield ev
        if (ev.type === 'done' || ev.type === 'error') return
      }
    } catch (error) {
      if (local.signal.aborted && local.signal.reason instanceof ServeError) throw local.signal.reason
      if (error instanceof ServeError) throw error
      throw new ServeError(502, 'worker_stream_failed', `the stream from worker ${w.name} failed: ${(error as Error).message}`)
    } finally {
      pulling = false
      this.o.supervisor.off('state', onState)
      signal.removeEventListener('abort', onAbort)
      local.abort(new ServeError(499, 'finished', 'request finished'))
      this.assigned.set(w.name, (this.assigned.get(w.name) ?? 1) - 1)
    }
  }
}

function safeJson(text: string): {error?: {code?: string; message?: string}} | undefined {
  try {
    return JSON.parse(text) as {error?: {code?: string; message?: string}}
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
        timer = setTimeout(() => reject(new ServeError(504, 'worker_timeout', `worker ${worker} sent nothing for ${ms} ms`)), ms)
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
