// Position-keyed patterns and digests for verifying transfers (hpd bench transfer).
//
// A pattern byte depends on its full position: (engine, request, rank, tensor, block, part) and
// the byte offset inside that part, so a misplaced, swapped, stale or short read cannot pass.
// Kernels take plain pointers and sizes, allocate nothing and are safe to run on any thread.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hpd {

/** Identity of one pattern part; `words` of the key in order: engine, request, rank, tensor, block, part. */
constexpr size_t kPatternKeyWords = 6;

uint64_t pattern_seed(const uint32_t key[kPatternKeyWords]);

/** Writes the pattern of part `seed` for part offsets [part_offset_bytes, +size_bytes) to dst. */
void pattern_fill(uint8_t* dst, uint64_t size_bytes, uint64_t seed, uint64_t part_offset_bytes);

/**
 * Checks src against the pattern; returns the index (relative to src) of the first wrong byte, or
 * -1 when all match.
 */
int64_t pattern_verify(const uint8_t* src, uint64_t size_bytes, uint64_t seed, uint64_t part_offset_bytes);

/** Expected pattern byte at one part offset (for error messages). */
uint8_t pattern_byte(uint64_t seed, uint64_t part_offset_bytes);

/** 64-bit digest of a byte range (XXH64-style 4-lane mix; not compatible with xxhash). */
uint64_t digest64(const uint8_t* src, uint64_t size_bytes, uint64_t seed);

}  // namespace hpd
