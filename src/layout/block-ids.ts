import {UsageError} from '../errors.js'
import {cdiv} from './kernel-blocks.js'
import type {EngineLayout} from './types.js'

/** Per group, the logical block ids one request holds on one engine (vLLM's per-group tuples). */
export type GroupBlockIds = readonly (readonly number[])[]

/** Logical blocks each group needs for `tokens` computed tokens: FA cdiv(tokens, block), state 1. */
export function blocksNeeded(engine: EngineLayout, tokens: number): number[] {
  return engine.groups.map((g) => (g.kind === 'attention' ? cdiv(tokens, engine.logicalBlockSize) : 1))
}

/** Sequential allocation from one shared pool, in group order (what a fresh HMA block pool hands out). */
export function defaultBlockIds(engine: EngineLayout, tokens: number, firstBlockId = 0): number[][] {
  let next = firstBlockId
  return blocksNeeded(engine, tokens).map((n) => Array.from({length: n}, () => next++))
}

/** Checks ids given by a caller: one list per group, long enough, in range, no block shared by two groups. */
export function checkBlockIds(engine: EngineLayout, side: 'prefill' | 'decode', ids: GroupBlockIds, tokens: number, numLogicalBlocks: number): void {
  const needed = blocksNeeded(engine, tokens)
  if (ids.length !== engine.groups.length) {
    throw usage(`${side} block ids list ${ids.length} groups, the layout has ${engine.groups.length}`, {side})
  }
  const seen = new Set<number>()
  ids.forEach((list, g) => {
    if (list.length < needed[g]) throw usage(`${side} group ${g} has ${list.length} block ids, ${needed[g]} are needed for ${tokens} tokens`, {side, group: g})
    for (const id of list.slice(0, needed[g])) {
      if (!Number.isInteger(id) || id < 0 || id >= numLogicalBlocks) throw usage(`${side} group ${g} block id ${id} is outside [0, ${numLogicalBlocks})`, {side, group: g, id})
      if (seen.has(id)) throw usage(`${side} block id ${id} is used twice (groups share tensors, so one block holds one group's data)`, {side, id})
      seen.add(id)
    }
  })
}

function usage(message: string, details: Record<string, unknown>): UsageError {
  return new UsageError('HPD_LAYOUT_BAD_BLOCK_IDS', message, {hint: 'Pass one list of logical block ids per KV-cache group (see inspect-layout groups).', details})
}
