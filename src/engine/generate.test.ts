import {describe, expect, it} from 'vitest'

import {generate} from './generate.js'
import {tinyModel} from './test-models.js'

describe('generate (the service behind `hpd generate`)', () => {
  it('samples reproducibly for a seed, and differently for another seed', () => {
    tinyModel('tiny-llama') // generated into the shared test cache
    const run = (seed: number) =>
      generate({model: 'tiny-llama', prompt: 'seeded', maxTokens: 10, tp: 1, temperature: 1.5, topP: 0.95, topK: 0, seed, ignoreEos: true}).tokenIds
    expect(run(11)).toEqual(run(11))
    expect(run(11)).not.toEqual(run(12))
  })

  it('rejects bad sampling options with usage errors', () => {
    expect(() => generate({model: 'tiny', prompt: 'x', maxTokens: 4, tp: 1, temperature: -1, topP: 1, topK: 0, seed: 0})).toThrow(
      expect.objectContaining({code: 'HPD_USAGE_BAD_TEMPERATURE'}),
    )
    expect(() => generate({model: 'tiny', prompt: 'x', maxTokens: 4, tp: 1, temperature: 1, topP: 0, topK: 0, seed: 0})).toThrow(
      expect.objectContaining({code: 'HPD_USAGE_BAD_TOP_P'}),
    )
    expect(() => generate({model: 'tiny-llama', prompt: 'x', maxTokens: 4, tp: 1, temperature: 0, topP: 1, topK: 0, seed: 0, chat: true})).toThrow(
      expect.objectContaining({code: 'HPD_USAGE_NO_CHAT_TEMPLATE'}),
    )
  })
})
