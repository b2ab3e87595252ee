/**
 * vLLM's KV-event batch (`vllm/distributed/kv_events.py`, the map encoding of msgspec structs with
 * their `type` tag, as vLLM publishes it since hybrid groups were added), MessagePack-encoded:
 *
 *   KVEventBatch {ts: float seconds, events: [...], data_parallel_rank: 0}
 *   BlockStored  {type: "BlockStored", block_hashes: [u64], parent_block_hash: u64 | null,
 *                 token_ids: [int], block_size: int, lora_id: null, medium: null, lora_name: null,
 *                 group_idx: int, kv_cache_spec_kind: "full_attention" | "mamba"}
 *   BlockRemoved {type: "BlockRemoved", block_hashes: [u64], medium: null, group_idx: int}
 *   AllBlocksCleared {type: "AllBlocksCleared"}
 *
 * Block hashes are integers (vLLM's VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES: the low 64 bits of the
 * digest, src/engine/block-hash.ts). A state group's BlockStored is a Mamba checkpoint: the state
 * right after the block it names (token_ids: that block's tokens). `medium` is null (the engine's
 * own cache; vLLM says "GPU" for its device memory, and hpd's cache is host memory).
 */
import {decode, encode} from '@msgpack/msgpack'

import {externalBlockHash} from '../../engine/block-hash.js'
import type {PrefixCacheEvent} from '../../engine/prefix-cache.js'

export type WireBlockStored = {
  readonly type: 'BlockStored'
  readonly block_hashes: readonly bigint[]
  readonly parent_block_hash: bigint | null
  readonly token_ids: readonly number[]
  readonly block_size: number
  readonly lora_id: null
  readonly medium: null
  readonly lora_name: null
  readonly group_idx: number
  readonly kv_cache_spec_kind: string
}
export type WireBlockRemoved = {readonly type: 'BlockRemoved'; readonly block_hashes: readonly bigint[]; readonly medium: null; readonly group_idx: number}
export type WireEvent = WireBlockStored | WireBlockRemoved | {readonly type: 'AllBlocksCleared'}

export interface WireBatch {
  readonly ts: number
  readonly events: readonly WireEvent[]
  readonly data_parallel_rank: number
}

export function wireEvent(e: PrefixCacheEvent): WireEvent {
  if (e.type === 'cleared') return {type: 'AllBlocksCleared'}
  if (e.type === 'removed') return {type: 'BlockRemoved', block_hashes: e.hashes.map(externalBlockHash), medium: null, group_idx: e.group}
  return {
    type: 'BlockStored',
    block_hashes: e.hashes.map(externalBlockHash),
    parent_block_hash: e.parent ? externalBlockHash(e.parent) : null,
    token_ids: e.tokenIds,
    block_size: e.blockSize,
    lora_id: null,
    medium: null,
    lora_name: null,
    group_idx: e.group,
    kv_cache_spec_kind: e.kind,
  }
}

export function encodeBatch(batch: WireBatch): Uint8Array {
  return encode(batch, {useBigInt64: true})
}

/**
 * A received batch, checked field by field (a subscriber must not trust a peer's bytes): null
 * when it is not a KVEventBatch. Hashes come back as bigint whatever integer width they had.
 */
export function decodeBatch(payload: Uint8Array): WireBatch | null {
  let raw: unknown
  try {
    raw = decode(payload, {useBigInt64: true})
  } catch {
    return null
  }
  if (!isRecord(raw) || !Array.isArray(raw.events)) return null
  const events: WireEvent[] = []
  for (const e of raw.events) {
    if (!isRecord(e)) return null
    if (e.type === 'AllBlocksCleared') events.push({type: 'AllBlocksCleared'})
    else if (e.type === 'BlockRemoved' && hashes(e.block_hashes) && int(e.group_idx ?? 0)) {
      events.push({type: 'BlockRemoved', block_hashes: (e.block_hashes as (number | bigint)[]).map((h) => BigInt(h)), medium: null, group_idx: Number(e.group_idx ?? 0)})
    } else if (e.type === 'BlockStored' && hashes(e.block_hashes) && int(e.block_size) && int(e.group_idx ?? 0) && Array.isArray(e.token_ids)) {
      events.push({
        type: 'BlockStored',
        block_hashes: (e.block_hashes as (number | bigint)[]).map((h) => BigInt(h)),
        parent_block_hash: e.parent_block_hash === null || e.parent_block_hash === undefined ? null : BigInt(e.parent_block_hash as bigint),
        token_ids: (e.token_ids as unknown[]).map(Number),
        block_size: Number(e.block_size),
        lora_id: null,
        medium: null,
        lora_name: null,
        group_idx: Number(e.group_idx ?? 0),
        kv_cache_spec_kind: typeof e.kv_cache_spec_kind === 'string' ? e.kv_cache_spec_kind : 'full_attention',
      })
    } else return null
  }
  return {ts: typeof raw.ts === 'number' ? raw.ts : 0, events, data_parallel_rank: typeof raw.data_parallel_rank === 'number' ? raw.data_parallel_rank : 0}
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function int(v: unknown): boolean {
  return (typeof v === 'number' && Number.isInteger(v) && v >= 0) || (typeof v === 'bigint' && v >= 0n)
}

function hashes(v: unknown): boolean {
  return Array.isArray(v) && v.every(int)
}
