import {describe, expect, it} from 'vitest'

import {HpdError} from '../errors.js'
import {HybridEngine, type StepEntry, type StepOutcome} from './engine.js'
import {StepScheduler, type SteppableEngine} from './step-scheduler.js'
import {tinyModel} from './test-models.js'

const MODELS = ['tiny-hybrid', 'tiny-hybrid-g1', 'tiny-llama'] as const

function prompt(n: number, salt = 0): number[] {
  return Array.from({length: n}, (_x, i) => (i * 37 + 11 + salt * 101) % 256)
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0
  let scale = 0
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]))
    scale = Math.max(scale, Math.abs(b[i]))
  }
  return diff / scale
}

const argmax = (l: Float32Array) => l.reduce((b, v, i) => (v > l[b] ? i : b), 0)

describe('engine steps off the main thread', () => {
  it.each(MODELS)('%s: an async step (recorded kernels on a libuv thread) computes bit for bit what the synchronous forward does', async (name) => {
    const m = tinyModel(name)
    const sync = new HybridEngine({spec: m.spec, weights: m.weights, tp: 2, numBlocks: 16})
    const async_ = new HybridEngine({spec: m.spec, weights: m.weights, tp: 2, numBlocks: 16})
    const a = sync.prefill('a', prompt(50))!
    const b = sync.prefill('b', prompt(9, 1))!
    const [da, db] = sync.decodeStep([{requestId: 'a', tokenId: 7}, {requestId: 'b', tokenId: 8}])
    async_.reserve('a', 50)
    async_.reserve('b', 9)
    const [ga] = (await async_.step([{requestId: 'a', tokens: prompt(50), wantLogits: true}])) as Float32Array[]
    const [gb] = (await async_.step([{requestId: 'b', tokens: prompt(9, 1), wantLogits: true}])) as Float32Array[]
    expect(ga).toEqual(a)
    expect(gb).toEqual(b)
    const [ea, eb] = (await async_.step([
      {requestId: 'a', tokens: [7], wantLogits: true},
      {requestId: 'b', tokens: [8], wantLogits: true},
    ])) as Float32Array[]
    expect(ea).toEqual(da)
    expect(eb).toEqual(db)
    sync.close()
    async_.close()
  })

  it('keeps the event loop free while a step computes', async () => {
    const m = tinyModel('tiny-hybrid')
    const engine = new HybridEngine({spec: m.spec, weights: m.weights, numBlocks: 64})
    engine.reserve('long', 3000)
    let ticks = 0
    const timer = setInterval(() => ticks++, 1)
    const t0 = performance.now()
    await engine.step([{requestId: 'long', tokens: prompt(3000), wantLogits: true}])
    const ms = performance.now() - t0
    clearInterval(timer)
    // A 3000-token step takes a good fraction of a second; the 1 ms timer kept firing meanwhile.
    expect(ticks).toBeGreaterThan(Math.min(20, ms / 20))
    engine.close()
  })

  it('an entry that cannot run gets its own error; the others compute; free() during the step waits for it', async () => {
    const m = tinyModel('tiny-hybrid')
    const engine = new HybridEngine({spec: m.spec, weights: m.weights, numBlocks: 16})
    engine.reserve('ok', 10)
    const step = engine.step([
      {requestId: 'ok', tokens: prompt(10), wantLogits: true},
      {requestId: 'unknown', tokens: [1], wantLogits: true},
      {requestId: 'bad-token', tokens: [99_999], wantLogits: true},
    ])
    engine.free('ok') // deferred: its pages are being computed
    const [ok, unknown, badToken] = await step
    expect(ok).toBeInstanceOf(Float32Array)
    expect(unknown).toMatchObject({code: 'HPD_ENGINE_UNKNOWN_REQUEST'})
    expect(badToken).toMatchObject({code: 'HPD_ENGINE_BAD_TOKEN'})
    expect(engine.usage().usedBlocks).toBe(0)
    expect(() => engine.prefill('x', [1])).not.toThrow()
    engine.close()
  })

  it.each(MODELS)('%s: fork copies the cache: every child continues exactly as the parent does', async (name) => {
    const m = tinyModel(name)
    const engine = new HybridEngine({spec: m.spec, weights: m.weights, numBlocks: 32})
    engine.prefill('p', prompt(45))
    engine.fork('p', ['c1', 'c2'])
    expect(engine.numCachedTokens('c2')).toBe(45)
    const rows = engine.decodeStep([
      {requestId: 'p', tokenId: 3},
      {requestId: 'c1', tokenId: 3},
      {requestId: 'c2', tokenId: 4},
    ])
    expect(rows[1]).toEqual(rows[0])
    const solo = new HybridEngine({spec: m.spec, weights: m.weights, numBlocks: 32})
    solo.prefill('s', prompt(45))
    const [other] = solo.decodeStep([{requestId: 's', tokenId: 4}])
    expect(rows[2]).toEqual(other)
    engine.close()
    solo.close()
  })

  it('fork is all or nothing when the pool runs out', () => {
    const m = tinyModel('tiny-hybrid')
    const engine = new HybridEngine({spec: m.spec, weights: m.weights, numBlocks: 5})
    engine.prefill('p', prompt(20))
    expect(() => engine.fork('p', ['a', 'b', 'c'])).toThrow(expect.objectContaining({code: 'HPD_ENGINE_POOL_FULL'}))
    expect(engine.usage().usedBlocks).toBe(engine.blocksNeeded(20).reduce((a, b) => a + b, 0))
    engine.close()
  })
})

describe('StepScheduler: chunked prefill', () => {
  it.each(MODELS)('%s: a prompt prefilled in chunks, interleaved with decode steps, gives the logits of one pass (1e-4)', async (name) => {
    const m = tinyModel(name)
    const engine = new HybridEngine({spec: m.spec, weights: m.weights, numBlocks: 32})
    const reference = new HybridEngine({spec: m.spec, weights: m.weights, numBlocks: 32})
    const whole = reference.prefill('r', prompt(300))!
    reference.prefill('d', prompt(12, 2))
    const s = new StepScheduler(engine, {maxStepTokens: 96, longPrefillTokens: 40})
    engine.prefill('d', prompt(12, 2))
    const long = s.prefill('r', prompt(300), {wantLogits: true})
    const decoded: number[] = []
    let next = 5
    for (let i = 0; i < 4; i++) {
      const [l] = await s.decode([{requestId: 'd', tokenId: next}])
      next = argmax(l as Float32Array)
      decoded.push(next)
    }
    const got = (await long)!
    expect(relErr(got, whole)).toBeLessThan(1e-4)
    expect(argmax(got)).toBe(argmax(whole))
    // the decode sequence is unaffected by sharing its steps with the prefill chunks
    let refNext = 5
    for (const t of decoded) {
      const [l] = reference.decodeStep([{requestId: 'd', tokenId: refNext}])
      refNext = argmax(l)
      expect(refNext).toBe(t)
    }
    expect(s.maxStepTokensSeen).toBeLessThanOrEqual(96)
    engine.close()
    reference.close()
  })

  it('a short prompt arriving behind a long one gets its first logits long before the long one finishes', async () => {
    const recorder = new RecordingEngine()
    const s = new StepScheduler(recorder, {maxStepTokens: 256, longPrefillTokens: 32})
    const order: string[] = []
    const long = s.prefill('long', Array(2000).fill(1), {wantLogits: true}).then(() => order.push('long'))
    await recorder.stepsDone(2)
    const short = s.prefill('short', Array(30).fill(1), {wantLogits: true}).then(() => order.push('short'))
    await Promise.all([long, short])
    expect(order).toEqual(['short', 'long'])
    // the step that completed the short prompt held no chunk of the long one; the long one never exceeded its chunk
    const shortStep = recorder.steps.find((st) => st.some((e) => e.requestId === 'short'))!
    expect(shortStep.map((e) => e.requestId)).toEqual(['short'])
    for (const st of recorder.steps) for (const e of st) if (e.requestId === 'long') expect(e.tokens.length).toBeLessThanOrEqual(32)
  })

  it('a long prompt is not starved by a stream of short ones: it advances at least every fourth step', async () => {
    const recorder = new RecordingEngine()
    const s = new StepScheduler(recorder, {maxStepTokens: 64, longPrefillTokens: 16})
    const long = s.prefill('long', Array(64).fill(1), {wantLogits: false})
    const shorts: Promise<unknown>[] = []
    for (let i = 0; i < 120; i++) shorts.push(s.prefill(`s${i}`, Array(8).fill(1), {wantLogits: true}))
    await Promise.all([long, ...shorts])
    const longSteps = recorder.steps.flatMap((st, i) => (st.some((e) => e.requestId === 'long') ? [i] : []))
    expect(longSteps).toHaveLength(4)
    expect(longSteps[0]).toBeLessThanOrEqual(3)
    for (let i = 1; i < longSteps.length; i++) expect(longSteps[i] - longSteps[i - 1]).toBeLessThanOrEqual(4)
    // while it waited, shorter prompts completed in every step
    const shortSteps = recorder.steps.flatMap((st, i) => (st.some((e) => e.requestId.startsWith('s')) ? [i] : []))
    expect(shortSteps.at(-1)!).toBeGreaterThanOrEqual(longSteps.at(-1)!)
  })

  it('every waiting decode is in the next step; a failed prefill (pool full) fails that prompt only', async () => {
    const recorder = new RecordingEngine()
    recorder.poolTokens = 1000
    const s = new StepScheduler(recorder, {maxStepTokens: 64, longPrefillTokens: 16})
    const tooBig = s.prefill('big', Array(2000).fill(1), {wantLogits: true})
    await expect(tooBig).rejects.toMatchObject({code: 'HPD_ENGINE_POOL_FULL'})
    const p = s.prefill('p', Array(100).fill(1), {wantLogits: true})
    const d = s.decode([{requestId: 'x', tokenId: 1}, {requestId: 'y', tokenId: 2}])
    const [x, y] = await d
    expect(x).toBeInstanceOf(Float32Array)
    expect(y).toBeInstanceOf(Float32Array)
    expect(recorder.steps[0].map((e) => e.requestId).slice(0, 2)).toEqual(['x', 'y'])
    await p
  })

  it('cancel drops a queued prefill with its reason', async () => {
    const recorder = new RecordingEngine()
    const s = new StepScheduler(recorder, {maxStepTokens: 64, longPrefillTokens: 16})
    const p = s.prefill('gone', Array(500).fill(1), {wantLogits: true})
    s.cancel('gone', new Error('client went away'))
    await expect(p).rejects.toThrow('client went away')
    expect(s.pendingPrefills).toBe(0)
  })

  it('close() fails queued work and waits for the step in progress', async () => {
    const recorder = new RecordingEngine()
    const s = new StepScheduler(recorder, {maxStepTokens: 64, longPrefillTokens: 16})
    const p = s.prefill('a', Array(200).fill(1), {wantLogits: true})
    await recorder.stepsDone(1)
    const stepsAtClose = recorder.steps.length
    await s.close()
    await expect(p).rejects.toMatchObject({code: 'HPD_ENGINE_CLOSED'})
    await expect(s.decode([{requestId: 'x', tokenId: 1}])).rejects.toMatchObject({code: 'HPD_ENGINE_CLOSED'})
    expect(recorder.steps.length).toBeLessThanOrEqual(stepsAtClose + 1)
  })

  it('refuses invalid options by name', () => {
    expect(() => new StepScheduler(new RecordingEngine(), {maxStepTokens: 0, longPrefillTokens: 8})).toThrow(expect.objectContaining({code: 'HPD_ENGINE_BAD_STEP_OPTION'}))
  })
})

/** An engine that records the steps it is asked for (the policy's seam; real steps are tested above). */
class RecordingEngine implements SteppableEngine {
  readonly steps: StepEntry[][] = []
  poolTokens = Number.MAX_SAFE_INTEGER
  private reserved = 0
  private readonly cached = new Map<string, number>()
  private waiters: (() => void)[] = []
  async step(entries: readonly StepEntry[]): Promise<StepOutcome[]> {
    this.steps.push(entries.map((e) => ({...e, tokens: [...e.tokens]})))
    await new Promise((r) => setTimeout(r, 1))
    for (const w of this.waiters.splice(0)) w()
    return entries.map((e) => {
      this.cached.set(e.requestId, (this.cached.get(e.requestId) ?? 0) + e.tokens.length)
      return e.wantLogits ? new Float32Array(4) : undefined
    })
  }
  reserve(requestId: string, numTokens: number): void {
    if (this.reserved + numTokens > this.poolTokens) throw new HpdError('HPD_ENGINE_POOL_FULL', `no room for ${requestId}`)
    this.reserved += numTokens
  }
  numCachedTokens(requestId: string): number {
    const n = this.cached.get(requestId)
    if (n === undefined) throw new HpdError('HPD_ENGINE_UNKNOWN_REQUEST', requestId)
    return n
  }
  stepsDone(n: number): Promise<void> {
    return new Promise((resolve) => {
      const check = () => (this.steps.length >= n ? resolve() : this.waiters.push(check))
      check()
    })
  }
}
