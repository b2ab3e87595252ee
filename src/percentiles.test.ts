import {describe, expect, it} from 'vitest'

import {percentiles} from './percentiles.js'

describe('percentiles', () => {
  it('interpolates between closest ranks, as numpy (and vllm bench)', () => {
    expect(percentiles([5, 1, 4, 2, 3], [0, 50, 99, 100])).toEqual([1, 3, 4.96, 5])
    expect(percentiles([10, 20], [25])).toEqual([12.5])
    expect(percentiles([], [50])).toEqual([undefined])
  })
})
