import {layersWith, type ModelSpec, stateLayers} from '../model/index.js'
import {cdiv} from './kernel-blocks.js'
import type {CacheGroup, LayerPlacement} from './types.js'

/**
 * vLLM `_get_kv_cache_groups_uniform_page_size` + `get_kv_cache_config_from_groups`:
 * group_size = the smallest per-type layer count (the largest if max < 1.5·min); each type's layers
 * split into cdiv(n, group_size) groups as layers[j::numGroups], missing members padding; then
 * group_size shared tensors, tensor s holding slot s of every group.
 *
 * Group order: attention groups first, then state groups (vLLM's unit tests order them so; the
 * order only changes how vLLM concatenates descriptor ids, never a byte).
 */
export function planGroups(model: ModelSpec): {groups: CacheGroup[]; numTensors: number; layers: LayerPlacement[]} {
  const types: {kind: CacheGroup['kind']; layers: readonly number[]}[] = [{kind: 'attention', layers: layersWith(model, 'attention')}]
  const state = stateLayers(model)
  if (state.length > 0) types.push({kind: 'state', layers: state})
  const counts = types.map((t) => t.layers.length)
  const min = Math.min(...counts)
  const max = Math.max(...counts)
  const groupSize = max < 1.5 * min ? max : min
  const groups: CacheGroup[] = []
  for (const type of types) {
    const numGroups = cdiv(type.layers.length, groupSize)
    for (let j = 0; j < numGroups; j++) {
      const slots = Array.from({length: groupSize}, (_, s) => {
        const i = j + s * numGroups
        return i < type.layers.length ? type.layers[i] : null
      })
      groups.push({index: groups.length, kind: type.kind, layers: slots})
    }
  }
  const placements = new Map<number, {kind: CacheGroup['kind']; group: number; tensorIndex: number}[]>()
  for (const g of groups) {
    g.layers.forEach((layer, slot) => {
      if (layer === null) return
      const list = placements.get(layer) ?? []
      list.push({kind: g.kind, group: g.index, tensorIndex: slot})
      placements.set(layer, list)
    })
  }
  const layers = model.layers.map((l): LayerPlacement => ({layer: l.index, caches: placements.get(l.index) ?? []}))
  return {groups, numTensors: groupSize, layers}
}
