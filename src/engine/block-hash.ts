import {createHash} from 'node:crypto'

/**
 * Prefix-cache block hashing as vLLM V1 does it (`hash_block_tokens`): a chain over full logical
 * blocks of token ids, each block's hash covering its parent's hash and its own tokens, so equal
 * hashes mean equal whole prefixes. sha256 with a fixed seed for the first parent (vLLM's
 * NONE_HASH for cryptographic hashes is fixed too, so independent processes — prefill and decode
 * workers, and the router scoring them — compute the same hashes for the same tokens).
 *
 * The byte encoding is hpd's own (parent digest ‖ token count ‖ tokens as u32 LE), not vLLM's
 * CBOR: hashes are compared between hpd processes only. What leaves the process (KV events,
 * vLLM's `VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES`) is the low 64 bits of the digest as an unsigned
 * integer (`externalBlockHash`), and every event also carries the block's token ids, so a consumer
 * that hashes tokens its own way (llm-d's precise prefix scorer, Dynamo's KV router) maps them.
 */
export type BlockHash = Buffer

/** The parent of the first block (32 bytes): sha256 of a fixed seed. */
export const NONE_HASH: BlockHash = createHash('sha256').update('hpd-prefix-cache-v1').digest()

/** Hash of one full block: its parent's hash (NONE_HASH for the first) and its tokens. */
export function hashBlockTokens(parent: BlockHash | undefined, tokens: readonly number[]): BlockHash {
  const body = Buffer.allocUnsafe(4 + 4 * tokens.length)
  body.writeUInt32LE(tokens.length, 0)
  for (let i = 0; i < tokens.length; i++) body.writeUInt32LE(tokens[i] >>> 0, 4 + 4 * i)
  return createHash('sha256')
    .update(parent ?? NONE_HASH)
    .update(body)
    .digest()
}

/**
 * Extends `hashes` (the chain of the first `hashes.length` full blocks of `tokens`) to every full
 * block `tokens` holds, at most `maxBlocks`. Returns the same array.
 */
export function extendBlockHashes(hashes: BlockHash[], tokens: readonly number[], blockSize: number, maxBlocks = Number.MAX_SAFE_INTEGER): BlockHash[] {
  const full = Math.min(maxBlocks, Math.floor(tokens.length / blockSize))
  for (let j = hashes.length; j < full; j++) hashes.push(hashBlockTokens(hashes[j - 1], tokens.slice(j * blockSize, (j + 1) * blockSize)))
  return hashes
}

/** The chain of every full block of `tokens` (at most `maxBlocks`). */
export function blockHashes(tokens: readonly number[], blockSize: number, maxBlocks?: number): BlockHash[] {
  return extendBlockHashes([], tokens, blockSize, maxBlocks)
}

/** What KV events and the router carry: the digest's low 64 bits, big-endian, unsigned (vLLM's int block hashes). */
export function externalBlockHash(hash: BlockHash): bigint {
  return hash.readBigUInt64BE(hash.length - 8)
}

/** Map key of a (KV-cache group, block hash) pair: each group caches its own blocks under the same chain. */
export function groupHashKey(group: number, hash: BlockHash): string {
  return `${group}:${hash.toString('base64')}`
}
