/**
 * Chunked prefill: every engine computation of a worker goes through one StepScheduler, which
 * builds each engine step from the decode tokens waiting for it and prefill chunks under a token
 * budget (vLLM's --max-num-batched-tokens), runs it off the JS main thread (HybridEngine.step),
 * and hands each caller its outcome. A long prompt therefore advances a chunk per step instead of
 * holding the engine for seconds, and control traffic is answered while a step computes.
 *
 * Policy per step (why: a short request's first token should not wait behind a long prompt):
 * 1. every decode token waiting (one per running sequence) is in the step;
 * 2. prefills, fewest remaining tokens first, share what is left of the budget; a prompt with
 *    more than `longPrefillTokens` left advances at most that many tokens per step (vLLM's
 *    --long-prefill-token-threshold), which bounds how long any step of it takes;
 * 3. a chunk that cannot complete its prompt sits the step out while a prompt with fewer tokens
 *    left is in it (shortest remaining first; prompts with equally many left run together) —
 *    except the oldest prefill once it did not advance for `MAX_SKIPS` steps in a row: it then
 *    goes first (no starvation).
 *
 * Ownership: a job's request holds blocks for its whole prompt from `prefill()` on (reserved up
 * front: a full pool refuses the prompt before any chunk runs); the caller frees them as before.
 */
import {HpdError, UsageError} from '../errors.js'
import type {StepEntry, StepOutcome} from './engine.js'

/** The engine calls the scheduler needs (HybridEngine implements them). */
export interface SteppableEngine {
  step(entries: readonly StepEntry[]): Promise<StepOutcome[]>
  reserve(requestId: string, numTokens: number): void
  numCachedTokens(requestId: string): number
  /**
   * A new request for prompt `tokens` with what the prefix cache holds of it; returns the tokens
   * already cached (they are not computed again). Absent: `reserve` (nothing cached).
   */
  admitPrompt?(requestId: string, tokens: readonly number[], options: {wantLogits: boolean}): number
  /** The position a chunk starting at `position` must not run past (a Mamba checkpoint boundary), or undefined. */
  chunkBoundary?(position: number): number | undefined
}

export interface StepSchedulerOptions {
  /** Most tokens one step computes, decode tokens included (vLLM --max-num-batched-tokens). */
  readonly maxStepTokens: number
  /** A prompt with more tokens left than this advances at most this many per step. */
  readonly longPrefillTokens: number
}

export const DEFAULT_STEP_OPTIONS: StepSchedulerOptions = {maxStepTokens: 512, longPrefillTokens: 128}

/** Steps a prefill that cannot complete may sit out in a row while shorter ones complete. */
const MAX_SKIPS = 3

interface PrefillJob {
  readonly requestId: string
  readonly tokens: readonly number[]
  /** Position of tokens[0] in the request (tokens it had cached before this prefill). */
  readonly basePosition: number
  readonly wantLogits: boolean
  readonly order: number
  offset: number
  skipped: number
  resolve(logits: Float32Array | undefined): void
  reject(error: Error): void
}

interface DecodeCall {
  readonly entries: readonly {readonly requestId: string; readonly tokenId: number}[]
  resolve(outcomes: (Float32Array | HpdError)[]): void
  reject(error: Error): void
}

export class StepScheduler {
  private readonly jobs: PrefillJob[] = []
  private decodes: DecodeCall[] = []
  private looping = false
  private arrivals = 0
  /** The step now computing (its pages and the engine's scratch are in use until it settles). */
  private current: Promise<unknown> | undefined
  private closed: Error | undefined
  /** Steps run and the largest step (tokens), for stats and tests. */
  steps = 0
  maxStepTokensSeen = 0

  constructor(
    private readonly engine: SteppableEngine,
    readonly options: StepSchedulerOptions = DEFAULT_STEP_OPTIONS,
  ) {
    for (const [name, v] of Object.entries(options)) {
      if (!Number.isInteger(v) || v < 1) throw new UsageError('HPD_ENGINE_BAD_STEP_OPTION', `${name} must be a positive integer, got ${String(v)}`)
    }
  }

  /** Prefill jobs not finished yet (queued or part-way). */
  get pendingPrefills(): number {
    return this.jobs.length
  }

  /**
   * Computes `tokens` into the request's cache in chunks (allocating the request when new);
   * resolves with the last token's logits when `wantLogits`. Throws at once, nothing reserved,
   * when the pool cannot hold the whole prompt.
   */
  prefill(requestId: string, tokens: readonly number[], options: {wantLogits: boolean}): Promise<Float32Array | undefined> {
    if (this.closed) return Promise.reject(this.closed)
    if (tokens.length === 0) return Promise.reject(new UsageError('HPD_ENGINE_EMPTY_PROMPT', `prefill of request ${requestId} with no tokens`))
    if (this.jobs.some((j) => j.requestId === requestId)) {
      return Promise.reject(new UsageError('HPD_ENGINE_DUPLICATE_REQUEST', `request ${requestId} is already being prefilled`))
    }
    let basePosition = 0
    let hit = 0
    try {
      let known = true
      try {
        basePosition = this.engine.numCachedTokens(requestId)
      } catch {
        known = false // a new request
      }
      if (!known && this.engine.admitPrompt) hit = this.engine.admitPrompt(requestId, tokens, {wantLogits: options.wantLogits})
      else this.engine.reserve(requestId, basePosition + tokens.length)
    } catch (error) {
      return Promise.reject(error as Error)
    }
    // A prefix-cache hit of the whole prompt (no logits wanted): nothing to compute.
    if (hit === tokens.length) return Promise.resolve(undefined)
    return new Promise((resolve, reject) => {
      this.jobs.push({requestId, tokens, basePosition, wantLogits: options.wantLogits, order: this.arrivals++, offset: hit, skipped: 0, resolve, reject})
      this.kick()
    })
  }

  /** One token per request in the next step; each gets its logits or its own error. */
  decode(entries: readonly {readonly requestId: string; readonly tokenId: number}[]): Promise<(Float32Array | HpdError)[]> {
    if (entries.length === 0) return Promise.resolve([])
    if (this.closed) return Promise.reject(this.closed)
    return new Promise((resolve, reject) => {
      this.decodes.push({entries, resolve, reject})
      this.kick()
    })
  }

  /** Drops the queued prefill of `requestId` (its caller gets `reason`); a running chunk finishes first. */
  cancel(requestId: string, reason: Error = new UsageError('HPD_ENGINE_CANCELLED', `request ${requestId} was cancelled`)): void {
    const i = this.jobs.findIndex((j) => j.requestId === requestId)
    if (i < 0) return
    const [job] = this.jobs.splice(i, 1)
    job.reject(reason)
  }

  /**
   * Refuses new work, fails what is queued, and resolves once the step in progress (if any) has
   * ended: after it, the engine's memory may be released (nothing computes into it any more).
   */
  async close(): Promise<void> {
    this.closed ??= new UsageError('HPD_ENGINE_CLOSED', 'the engine is shutting down')
    for (const job of this.jobs.splice(0)) job.reject(this.closed)
    for (const d of this.decodes.splice(0)) d.reject(this.closed)
    await this.current?.catch(() => undefined)
  }

  private kick(): void {
    if (!this.looping) void this.loop()
  }

  private async loop(): Promise<void> {
    this.looping = true
    try {
      while (this.decodes.length > 0 || this.jobs.length > 0) {
        // Two event-loop turns before building the step: callers whose step just ended (a
        // continuous batcher yields one turn between steps) enqueue their next decode first, so
        // running sequences are not left out of it. Costs microseconds.
        await nextTurn()
        await nextTurn()
        await this.runOneStep()
      }
    } finally {
      this.looping = false
    }
  }

  private async runOneStep(): Promise<void> {
    const decodes = this.decodes
    this.decodes = []
    const decodeEntries: StepEntry[] = decodes.flatMap((d) => d.entries.map((e) => ({requestId: e.requestId, tokens: [e.tokenId], wantLogits: true})))
    const chunks = this.pickChunks(this.options.maxStepTokens - decodeEntries.length)
    const chunkEntries: StepEntry[] = chunks.map(({job, take}) => ({
      requestId: job.requestId,
      tokens: job.tokens.slice(job.offset, job.offset + take),
      wantLogits: job.wantLogits && job.offset + take === job.tokens.length,
    }))
    if (decodeEntries.length + chunkEntries.length === 0) return
    let outcomes: StepOutcome[]
    try {
      const step = this.engine.step([...decodeEntries, ...chunkEntries])
      this.current = step
      outcomes = await step
    } catch (error) {
      // The step failed as a whole (a kernel, a duplicate): everyone in it fails.
      const e = error instanceof Error ? error : new Error(String(error))
      for (const d of decodes) d.reject(e)
      for (const {job} of chunks) this.finishJob(job, e)
      return
    }
    this.steps++
    this.maxStepTokensSeen = Math.max(this.maxStepTokensSeen, decodeEntries.length + chunks.reduce((a, c) => a + c.take, 0))
    let k = 0
    for (const d of decodes) {
      d.resolve(d.entries.map(() => {
        const o = outcomes[k++]
        return o === undefined ? new UsageError('HPD_ENGINE_NO_LOGITS', 'a decode entry produced no logits') : o
      }))
    }
    chunks.forEach(({job, take}, i) => {
      const o = outcomes[decodeEntries.length + i]
      if (o instanceof HpdError) return this.finishJob(job, o)
      job.offset += take
      if (job.offset === job.tokens.length) this.finishJob(job, o)
    })
  }

  private finishJob(job: PrefillJob, outcome: Float32Array | undefined | Error): void {
    const i = this.jobs.indexOf(job)
    if (i < 0) return // cancelled meanwhile: its caller already has its answer
    this.jobs.splice(i, 1)
    if (outcome instanceof Error) job.reject(outcome)
    else job.resolve(outcome)
  }

  /** The prefill chunks of the next step, within `budget` tokens (at least a quarter of the step: prefills always advance). */
  private pickChunks(budget: number): {job: PrefillJob; take: number}[] {
    let left = Math.max(budget, Math.ceil(this.options.maxStepTokens / 4))
    const remaining = (j: PrefillJob) => j.tokens.length - j.offset
    const byRemaining = [...this.jobs].sort((a, b) => remaining(a) - remaining(b) || a.order - b.order)
    // The oldest prefill goes first once it sat out MAX_SKIPS steps in a row: a stream of
    // shorter prompts cannot starve it (every other job is younger, so each is served in turn).
    const oldest = this.jobs.reduce<PrefillJob | undefined>((o, j) => (o === undefined || j.order < o.order ? j : o), undefined)
    const starving = oldest !== undefined && oldest.skipped >= MAX_SKIPS ? oldest : undefined
    const ordered = starving ? [starving, ...byRemaining.filter((j) => j !== starving)] : byRemaining
    const picked: {job: PrefillJob; take: number; completes: boolean}[] = []
    for (const job of ordered) {
      if (left <= 0) break
      let take = Math.min(remaining(job) > this.options.longPrefillTokens ? this.options.longPrefillTokens : remaining(job), left)
      // "align" mode: a chunk ends at the next Mamba checkpoint boundary at the latest.
      const position = job.basePosition + job.offset
      const boundary = this.engine.chunkBoundary?.(position)
      if (boundary !== undefined) take = Math.min(take, boundary - position)
      picked.push({job, take, completes: take === remaining(job)})
      left -= take
    }
    // Shortest remaining first: a chunk that cannot complete its prompt sits out while a prompt
    // with fewer tokens left is in the step (equals run together), so a short prompt's steps are
    // not stretched by a long one's chunks.
    const fewest = Math.min(...picked.map((p) => remaining(p.job)))
    const kept = picked.filter((p) => p.completes || remaining(p.job) === fewest || p.job === starving)
    for (const job of this.jobs) job.skipped = kept.some((p) => p.job === job) ? 0 : job.skipped + 1
    return kept
  }
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}
