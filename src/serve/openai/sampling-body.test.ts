import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import type {SamplingParams} from '../protocol.js'
import {admit} from './admit.js'
import {bodyOfSampling} from './sampling-body.js'
import {byteTokenizer} from '../../testing/byte-tokenizer.js'

const bytes = byteTokenizer()
const limits = {modelNames: ['m'], maxModelLen: 512, vocabSize: 300, defaultChatMaxTokens: 16, acceptKvTransferParams: false}

/** SamplingParams as admission produces them: neutral values absent, every value in its range. */
const sampling: fc.Arbitrary<SamplingParams> = fc
  .record(
    {
      temperature: fc.double({min: 0, max: 2, noNaN: true}),
      topP: fc.double({min: Number.MIN_VALUE, max: 1, noNaN: true}),
      topK: fc.integer({min: 0, max: 299}),
      seed: fc.option(fc.integer({min: -(2 ** 40), max: 2 ** 40}), {nil: undefined}),
      maxTokens: fc.integer({min: 1, max: 400}),
      ignoreEos: fc.boolean(),
      minP: fc.option(fc.double({min: 0.001, max: 1, noNaN: true}), {nil: undefined}),
      presencePenalty: fc.option(fc.double({min: -2, max: 2, noNaN: true}).filter((v) => v !== 0), {nil: undefined}),
      frequencyPenalty: fc.option(fc.double({min: -2, max: 2, noNaN: true}).filter((v) => v !== 0), {nil: undefined}),
      repetitionPenalty: fc.option(fc.double({min: 0.01, max: 2, noNaN: true}).filter((v) => v !== 1), {nil: undefined}),
      logitBias: fc.option(fc.dictionary(fc.integer({min: 0, max: 299}).map(String), fc.double({min: -100, max: 100, noNaN: true}), {minKeys: 1, maxKeys: 4}), {nil: undefined}),
      stopTokenIds: fc.option(fc.array(fc.integer({min: 0, max: 299}), {minLength: 1, maxLength: 4}), {nil: undefined}),
      logprobs: fc.option(fc.integer({min: 0, max: 20}), {nil: undefined}),
      n: fc.option(fc.integer({min: 2, max: 4}), {nil: undefined}),
    },
    {requiredKeys: ['temperature', 'topP', 'topK', 'seed', 'maxTokens', 'ignoreEos']},
  )
  .chain((s) => fc.option(fc.integer({min: 1, max: s.maxTokens}), {nil: undefined}).map((minTokens) => ({...s, ...(minTokens !== undefined ? {minTokens} : {})})))
  // best_of > n ranks by logprob: admission then asks for the sampled token's logprob at least.
  .map((s) => (s.n !== undefined && s.logprobs === undefined ? {...s, logprobs: 0} : s))
  .map((s) => Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)) as unknown as SamplingParams)

describe('the decode leg hpd’s router sends', () => {
  it('is admitted by a worker as exactly the sampling the router admitted (round trip)', () => {
    fc.assert(
      fc.property(sampling, (s) => {
        const body = {model: 'm', prompt: [72, 105, 33], ...bodyOfSampling(s)}
        const got = admit('completion', body, bytes, limits).sampling[0]
        expect(got).toEqual(s)
      }),
      {seed: 20261206, numRuns: 300},
    )
  })
})
