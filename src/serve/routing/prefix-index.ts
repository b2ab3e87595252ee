/**
 * The router's view of what each worker's prefix cache holds, built from the workers' KV events
 * (vLLM's KVEventBatch, src/serve/kv-events): per worker, per KV-cache group, the block hashes
 * stored and not yet removed, the group's kind and block size. `match` answers "how much of this
 * prompt does the worker hold": the attention chain (leading blocks present in every attention
 * group) and the usable prefix (for a hybrid, the longest part of that chain ending at a Mamba
 * checkpoint in every state group — where a prefill could resume; the decode side of P/D needs
 * the attention chain only, since it always pulls the final state).
 *
 * Hashes are recomputed from the prompt's tokens the way workers compute them
 * (src/engine/block-hash.ts), per block size, once per request. Approximate by nature (events are
 * best effort): a wrong guess costs a cache miss, never a wrong answer, because each worker checks
 * its own cache.
 */
import {blockHashes, externalBlockHash} from '../../engine/block-hash.js'
import type {WireBatch} from '../kv-events/format.js'

interface GroupView {
  kind: string
  blockSize: number
  readonly hashes: Set<bigint>
}

/** Most hashes kept per worker: a bound on the router's memory whatever workers send. */
export const MAX_HASHES_PER_WORKER = 1_000_000

export interface PrefixMatch {
  /** Leading prompt tokens whose attention blocks the worker holds. */
  readonly attentionTokens: number
  /** Leading prompt tokens a prefill could skip there (attention + a Mamba checkpoint at the end). */
  readonly usableTokens: number
}

export class PrefixIndex {
  private readonly workers = new Map<string, Map<number, GroupView>>()
  private readonly sizes = new Map<string, number>()

  /** Applies one batch of `worker`'s events. */
  apply(worker: string, batch: WireBatch): void {
    let groups = this.workers.get(worker)
    if (!groups) this.workers.set(worker, (groups = new Map()))
    for (const e of batch.events) {
      if (e.type === 'AllBlocksCleared') {
        groups.clear()
        this.sizes.set(worker, 0)
        continue
      }
      let g = groups.get(e.group_idx)
      if (e.type === 'BlockStored') {
        if (!g) groups.set(e.group_idx, (g = {kind: e.kv_cache_spec_kind, blockSize: e.block_size, hashes: new Set()}))
        g.kind = e.kv_cache_spec_kind
        g.blockSize = e.block_size
        for (const h of e.block_hashes) {
          if ((this.sizes.get(worker) ?? 0) >= MAX_HASHES_PER_WORKER) break
          if (!g.hashes.has(h)) this.sizes.set(worker, (this.sizes.get(worker) ?? 0) + 1)
          g.hashes.add(h)
        }
      } else if (g) {
        for (const h of e.block_hashes) if (g.hashes.delete(h)) this.sizes.set(worker, (this.sizes.get(worker) ?? 1) - 1)
      }
    }
  }

  /** Forgets a worker (restarted: its cache is new; or gone). A gap in its event stream keeps the view: a stale entry costs a miss, not a wrong answer. */
  reset(worker: string): void {
    this.workers.delete(worker)
    this.sizes.delete(worker)
  }

  /** Hashes a worker holds (all groups). */
  size(worker: string): number {
    return this.sizes.get(worker) ?? 0
  }

  /** How much of `tokens` the worker holds; `hashesOf` memoises the prompt's chain per block size. */
  match(worker: string, tokens: readonly number[], hashesOf: (blockSize: number) => readonly bigint[] = promptHashes(tokens)): PrefixMatch {
    const groups = [...(this.workers.get(worker)?.values() ?? [])]
    const attention = groups.filter((g) => g.kind !== 'mamba')
    const state = groups.filter((g) => g.kind === 'mamba')
    if (attention.length === 0) return {attentionTokens: 0, usableTokens: 0}
    const blockSize = attention[0].blockSize
    if (groups.some((g) => g.blockSize !== blockSize)) return {attentionTokens: 0, usableTokens: 0}
    const chain = hashesOf(blockSize)
    let blocks = 0
    while (blocks < chain.length && attention.every((g) => g.hashes.has(chain[blocks]))) blocks++
    let usable = blocks
    if (state.length > 0) while (usable > 0 && !state.every((g) => g.hashes.has(chain[usable - 1]))) usable--
    return {attentionTokens: blocks * blockSize, usableTokens: usable * blockSize}
  }
}

/** The prompt's external block hashes per block size, computed once per size. */
export function promptHashes(tokens: readonly number[]): (blockSize: number) => readonly bigint[] {
  const memo = new Map<number, bigint[]>()
  return (blockSize) => {
    let h = memo.get(blockSize)
    if (!h) memo.set(blockSize, (h = blockHashes(tokens, blockSize).map(externalBlockHash)))
    return h
  }
}
