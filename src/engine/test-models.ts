import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {loadModel, type LoadedModel} from './load-model.js'

/**
 * Test helper: the tiny models, generated once per machine into a shared temporary cache (unless
 * HPD_CACHE_DIR is set) and memoised per process.
 */
const loaded = new Map<string, LoadedModel>()

export function tinyModel(name: 'tiny-hybrid' | 'tiny-hybrid-g1' | 'tiny-llama'): LoadedModel {
  process.env.HPD_CACHE_DIR ??= join(tmpdir(), 'hpd-test-cache')
  let m = loaded.get(name)
  if (!m) {
    m = loadModel(name)
    loaded.set(name, m)
  }
  return m
}
