/**
 * bf16 ↔ fp32 for weights kept as bf16 in memory. A bf16 value is the high 16 bits of an fp32,
 * so widening is exact (a shift); narrowing rounds to nearest even (NaN and ±Inf keep their class).
 * A bf16 tensor is a Uint16Array of those bit patterns: what the kernels take as a bf16 weight.
 */
export function widenBf16(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length)
  const u = new Uint32Array(out.buffer)
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16
  return out
}

export function narrowToBf16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length)
  const u = new Uint32Array(values.buffer, values.byteOffset, values.length)
  for (let i = 0; i < values.length; i++) {
    const b = u[i]
    out[i] = (b & 0x7f800000) === 0x7f800000 ? b >>> 16 : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff
  }
  return out
}
