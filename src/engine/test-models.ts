import {tmpdir} from 'node:os'
import {join} from 'node:path'

import type {HybridEngine} from './engine.js'
import {loadModel, type LoadedModel} from './load-model.js'

/**
 * Test helper: the tiny models, generated once per machine into a shared temporary cache (unless
 * HPD_CACHE_DIR is set) and memoised per process.
 */
const loaded = new Map<string, LoadedModel>()

export type TinyModelName = 'tiny-hybrid' | 'tiny-hybrid-g1' | 'tiny-llama' | 'tiny-granite-h' | 'tiny-falcon-h1' | 'tiny-qwen3-next' | 'tiny-nemotron-h-moe'

export function tinyModel(name: TinyModelName): LoadedModel {
  process.env.HPD_CACHE_DIR ??= join(tmpdir(), 'hpd-test-cache')
  let m = loaded.get(name)
  if (!m) {
    m = loadModel(name)
    loaded.set(name, m)
  }
  return m
}

/**
 * Copies a request's cache like a pull would: every logical block of every group, every tensor,
 * every rank. Blocks-first (hybrid) pages are contiguous; kv-first (pure attention) blocks are a
 * K range in the first half of the tensor and a V range in the second.
 */
export function copyPages(from: HybridEngine, fromId: string, to: HybridEngine, toIds: readonly (readonly number[])[]): void {
  const pageElems = from.layout.pageBytes / 4
  const ranges = (engine: HybridEngine, block: number): [number, number][] =>
    engine.layout.kvLayout === 'blocks-first'
      ? [[block * pageElems, pageElems]]
      : [
          [(block * pageElems) / 2, pageElems / 2],
          [(engine.numBlocks * pageElems) / 2 + (block * pageElems) / 2, pageElems / 2],
        ]
  const src = from.blockIds(fromId)
  from.caches.forEach((rankCache, rank) => {
    rankCache.tensors.forEach((tensor, t) => {
      src.forEach((blocks, g) =>
        blocks.forEach((b, j) => {
          const dst = ranges(to, toIds[g][j])
          ranges(from, b).forEach(([offset, length], k) => to.caches[rank].tensors[t].set(tensor.subarray(offset, offset + length), dst[k][0]))
        }),
      )
    })
  })
}

