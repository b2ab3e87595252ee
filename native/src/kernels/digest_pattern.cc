// Pattern fill/verify and digests. Preconditions: pointers valid for size_bytes; no alignment
// needed (words are loaded with memcpy). Word w of a part is splitmix64(seed + w): each 8-byte
// word of a part differs, and so do parts, so even a read shifted by 8 bytes fails.
#include <cstring>

#include "hpd/digest.h"

namespace hpd {
namespace {

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kP3 = 0x165667B19E3779F9ull;
constexpr uint64_t kP4 = 0x85EBCA77C2B2AE63ull;
constexpr uint64_t kP5 = 0x27D4EB2F165667C5ull;

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint64_t round64(uint64_t acc, uint64_t input) { return rotl(acc + input * kP2, 31) * kP1; }
inline uint64_t merge64(uint64_t acc, uint64_t val) { return (acc ^ round64(0, val)) * kP1 + kP4; }

}  // namespace

uint64_t pattern_seed(const uint32_t key[kPatternKeyWords]) {
  uint64_t h = 0x6870645F70617474ull;  // "hpd_patt"
  for (size_t i = 0; i < kPatternKeyWords; ++i) h = splitmix64(h ^ (uint64_t(key[i]) + (uint64_t(i) << 32)));
  return h;
}

uint8_t pattern_byte(uint64_t seed, uint64_t part_offset_bytes) {
  const uint64_t word = splitmix64(seed + part_offset_bytes / 8);
  return static_cast<uint8_t>(word >> (8 * (part_offset_bytes % 8)));
}

void pattern_fill(uint8_t* dst, uint64_t size_bytes, uint64_t seed, uint64_t part_offset_bytes) {
  uint64_t i = 0;
  while (i < size_bytes && (part_offset_bytes + i) % 8 != 0) {
    dst[i] = pattern_byte(seed, part_offset_bytes + i);
    ++i;
  }
  uint64_t w = (part_offset_bytes + i) / 8;
  for (; i + 8 <= size_bytes; i += 8, ++w) {
    const uint64_t v = splitmix64(seed + w);
    std::memcpy(dst + i, &v, 8);
  }
  for (; i < size_bytes; ++i) dst[i] = pattern_byte(seed, part_offset_bytes + i);
}

int64_t pattern_verify(const uint8_t* src, uint64_t size_bytes, uint64_t seed, uint64_t part_offset_bytes) {
  uint64_t i = 0;
  while (i < size_bytes && (part_offset_bytes + i) % 8 != 0) {
    if (src[i] != pattern_byte(seed, part_offset_bytes + i)) return static_cast<int64_t>(i);
    ++i;
  }
  uint64_t w = (part_offset_bytes + i) / 8;
  for (; i + 8 <= size_bytes; i += 8, ++w) {
    if (load64(src + i) != splitmix64(seed + w)) {
      for (uint64_t j = i; j < i + 8; ++j) {
        if (src[j] != pattern_byte(seed, part_offset_bytes + j)) return static_cast<int64_t>(j);
      }
    }
  }
  for (; i < size_bytes; ++i) {
    if (src[i] != pattern_byte(seed, part_offset_bytes + i)) return static_cast<int64_t>(i);
  }
  return -1;
}

uint64_t digest64(const uint8_t* src, uint64_t size_bytes, uint64_t seed) {
  const uint8_t* p = src;
  const uint8_t* end = src + size_bytes;
  uint64_t h;
  if (size_bytes >= 32) {
    uint64_t v1 = seed + kP1 + kP2, v2 = seed + kP2, v3 = seed, v4 = seed - kP1;
    const uint8_t* limit = end - 32;
    do {
      v1 = round64(v1, load64(p));
      v2 = round64(v2, load64(p + 8));
      v3 = round64(v3, load64(p + 16));
      v4 = round64(v4, load64(p + 24));
      p += 32;
    } while (p <= limit);
    h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
    h = merge64(h, v1);
    h = merge64(h, v2);
    h = merge64(h, v3);
    h = merge64(h, v4);
  } else {
    h = seed + kP5;
  }
  h += size_bytes;
  for (; p + 8 <= end; p += 8) h = rotl(h ^ round64(0, load64(p)), 27) * kP1 + kP4;
  for (; p < end; ++p) h = rotl(h ^ (uint64_t(*p) * kP5), 11) * kP1;
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

}  // namespace hpd
