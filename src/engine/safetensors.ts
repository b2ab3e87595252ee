import {closeSync, readSync, writeFileSync} from 'node:fs'

import {ModelConfigError} from '../errors.js'
import {describeFound, jsonErrorPlace, openRegularFile} from '../model/index.js'

/**
 * The safetensors format (huggingface/safetensors README, tensor.rs): u64 LE header length N,
 * N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?}`, then the
 * byte buffer. Entries must tile the buffer exactly; a file that does not is refused with a
 * ModelConfigError naming the file and the tensor at fault. Every tensor is returned as fp32
 * (bf16 widened exactly by a 16-bit shift, fp16 converted, f32 copied).
 */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16'

export interface TensorEntry {
  readonly name: string
  readonly dtype: SafetensorsDtype
  readonly shape: readonly number[]
  readonly beginBytes: number
  readonly endBytes: number
}

export interface SafetensorsHeader {
  readonly path: string
  readonly dataStartBytes: number
  readonly entries: ReadonlyMap<string, TensorEntry>
  readonly metadata: Readonly<Record<string, string>>
}

const DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = {F32: 4, F16: 2, BF16: 2}
const MAX_HEADER_BYTES = 100_000_000

function corrupt(path: string, what: string, details: Record<string, unknown> = {}): ModelConfigError {
  return new ModelConfigError('HPD_WEIGHTS_CORRUPT', `${path}: ${what}`, {
    hint: 'Re-download or re-write the safetensors file; it does not follow the safetensors format.',
    details: {path, ...details},
  })
}

/** Reads and validates the header of one .safetensors file. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  // Refuses FIFOs, devices and directories before reading (a FIFO would block the open forever).
  const {fd, stats} = openRegularFile(path, 'safetensors')
  try {
    const fileBytes = stats.size
    if (fileBytes < 8) throw corrupt(path, `file is ${fileBytes} bytes, shorter than the 8-byte header length`)
    const lenBuf = Buffer.alloc(8)
    readSync(fd, lenBuf, 0, 8, 0)
    const headerBytes = Number(lenBuf.readBigUInt64LE(0))
    if (headerBytes > MAX_HEADER_BYTES || 8 + headerBytes > fileBytes) {
      throw corrupt(path, `header length ${headerBytes} does not fit in the ${fileBytes}-byte file (truncated?)`)
    }
    const headerBuf = Buffer.alloc(headerBytes)
    readSync(fd, headerBuf, 0, headerBytes, 8)
    let json: Record<string, unknown>
    try {
      json = JSON.parse(headerBuf.toString('utf8')) as Record<string, unknown>
    } catch (error) {
      throw corrupt(path, `header is not valid JSON${jsonErrorPlace(error)}`)
    }
    const entries = new Map<string, TensorEntry>()
    let metadata: Record<string, string> = {}
    for (const [name, value] of Object.entries(json)) {
      if (name === '__metadata__') {
        metadata = (value ?? {}) as Record<string, string>
        continue
      }
      entries.set(name, parseEntry(path, name, value))
    }
    const dataStartBytes = 8 + headerBytes
    const sorted = [...entries.values()].sort((a, b) => a.beginBytes - b.beginBytes)
    let cursor = 0
    for (const e of sorted) {
      if (e.beginBytes !== cursor) throw corrupt(path, `tensor ${e.name} starts at ${e.beginBytes}, expected ${cursor} (gap or overlap)`, {tensor: e.name})
      cursor = e.endBytes
    }
    if (dataStartBytes + cursor !== fileBytes) {
      throw corrupt(path, `tensors end at byte ${dataStartBytes + cursor} but the file has ${fileBytes} bytes (truncated or trailing data)`)
    }
    return {path, dataStartBytes, entries, metadata}
  } finally {
    closeSync(fd)
  }
}

function parseEntry(path: string, name: string, value: unknown): TensorEntry {
  const v = value as {dtype?: unknown; shape?: unknown; data_offsets?: unknown}
  if (v?.dtype !== 'F32' && v?.dtype !== 'F16' && v?.dtype !== 'BF16') {
    throw new ModelConfigError('HPD_WEIGHTS_DTYPE', `${path}: tensor ${name} has dtype ${typeof v?.dtype === 'string' && /^[A-Z0-9_]{1,16}$/u.test(v.dtype) ? v.dtype : describeFound(v?.dtype)}; hpd reads F32, F16 and BF16`, {
      hint: 'Convert the checkpoint to bf16, fp16 or fp32 (quantized checkpoints are not supported).',
      details: {path, tensor: name},
    })
  }
  const shape = v.shape
  const offsets = v.data_offsets
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) throw corrupt(path, `tensor ${name} has a bad shape`, {tensor: name})
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isInteger(d) && d >= 0) || offsets[1] < offsets[0]) {
    throw corrupt(path, `tensor ${name} has bad data_offsets`, {tensor: name})
  }
  const numel = (shape as number[]).reduce((a, b) => a * b, 1)
  const dtype = v.dtype as SafetensorsDtype
  if (offsets[1] - offsets[0] !== numel * DTYPE_BYTES[dtype]) {
    throw corrupt(path, `tensor ${name}: ${offsets[1] - offsets[0]} bytes for ${numel} ${dtype} elements`, {tensor: name})
  }
  return {name, dtype, shape: shape as number[], beginBytes: offsets[0], endBytes: offsets[1]}
}

/** Reads one tensor of a validated file as fp32. */
export function readTensorF32(header: SafetensorsHeader, name: string): Float32Array {
  return readTensor(header, name, {keepBf16: false}) as Float32Array
}

/**
 * Reads one tensor of a validated file: BF16 as its raw bit patterns (a Uint16Array, half the
 * memory of fp32) when `keepBf16`, otherwise widened; F16 is always converted to fp32; F32 copied.
 */
export function readTensor(header: SafetensorsHeader, name: string, options: {keepBf16: boolean}): Float32Array | Uint16Array {
  const entry = header.entries.get(name)
  if (!entry) throw new ModelConfigError('HPD_WEIGHTS_MISSING_TENSOR', `${header.path} has no tensor ${name}`, {details: {tensor: name}})
  const sizeBytes = entry.endBytes - entry.beginBytes
  // Read straight into the memory the tensor is returned in (F32, or BF16 kept): no staging copy,
  // so loading a checkpoint peaks at its own size. BF16 widened and F16 stage their 2-byte values.
  const direct = entry.dtype === 'F32' ? new Float32Array(sizeBytes / 4) : new Uint16Array(sizeBytes / 2)
  const bytes = new Uint8Array(direct.buffer)
  const {fd} = openRegularFile(header.path, 'safetensors')
  try {
    let done = 0
    while (done < sizeBytes) {
      const n = readSync(fd, bytes, done, sizeBytes - done, header.dataStartBytes + entry.beginBytes + done)
      if (n === 0) throw corrupt(header.path, `tensor ${name} is truncated`, {tensor: name})
      done += n
    }
  } finally {
    closeSync(fd)
  }
  if (direct instanceof Float32Array || (entry.dtype === 'BF16' && options.keepBf16)) return direct
  return toF32(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), entry.dtype)
}

function toF32(raw: Buffer, dtype: SafetensorsDtype): Float32Array {
  const count = raw.length / DTYPE_BYTES[dtype]
  const out = new Float32Array(count)
  if (dtype === 'F32') {
    new Uint8Array(out.buffer).set(raw)
    return out
  }
  const bits = new Uint32Array(out.buffer)
  for (let i = 0; i < count; i++) {
    const h = raw.readUInt16LE(i * 2)
    bits[i] = dtype === 'BF16' ? h << 16 : f16ToF32Bits(h)
  }
  return out
}

function f16ToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16
  const exp = (h >> 10) & 0x1f
  const mant = h & 0x3ff
  if (exp === 0) {
    if (mant === 0) return sign >>> 0
    // subnormal: renormalize
    let e = -1
    let m = mant
    do {
      e++
      m <<= 1
    } while ((m & 0x400) === 0)
    return (sign | ((127 - 15 - e) << 23) | ((m & 0x3ff) << 13)) >>> 0
  }
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0
  return (sign | ((exp - 15 + 127) << 23) | (mant << 13)) >>> 0
}

export interface TensorToWrite {
  readonly name: string
  readonly shape: readonly number[]
  readonly data: Float32Array
  /** Stored dtype; F32 is bit-exact, BF16 truncates with round-to-nearest-even, F16 rounds. */
  readonly dtype?: SafetensorsDtype
}

/** Writes tensors as one .safetensors file (header padded to 8 bytes, tensors sorted by name). */
export function writeSafetensors(path: string, tensors: readonly TensorToWrite[], metadata: Record<string, string> = {format: 'pt'}): void {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  const header: Record<string, unknown> = {__metadata__: metadata}
  const blobs: Buffer[] = []
  let offset = 0
  for (const t of sorted) {
    const dtype = t.dtype ?? 'F32'
    const numel = t.shape.reduce((a, b) => a * b, 1)
    if (numel !== t.data.length) throw new Error(`writeSafetensors: ${t.name} has ${t.data.length} values for shape [${t.shape.join(', ')}]`)
    const blob = fromF32(t.data, dtype)
    header[t.name] = {dtype, shape: t.shape, data_offsets: [offset, offset + blob.length]}
    blobs.push(blob)
    offset += blob.length
  }
  let json = JSON.stringify(header)
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8)
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)))
  writeFileSync(path, Buffer.concat([len, Buffer.from(json, 'utf8'), ...blobs]))
}

function fromF32(data: Float32Array, dtype: SafetensorsDtype): Buffer {
  if (dtype === 'F32') return Buffer.from(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength))
  const out = Buffer.alloc(data.length * 2)
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length)
  for (let i = 0; i < data.length; i++) {
    const b = bits[i]
    if (dtype === 'BF16') {
      const rounded = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16
      out.writeUInt16LE((b & 0x7f800000) === 0x7f800000 ? b >>> 16 : rounded & 0xffff, i * 2)
    } else {
      out.writeUInt16LE(f32ToF16(data[i]), i * 2)
    }
  }
  return out
}

function f32ToF16(v: number): number {
  const f = new Float32Array([v])
  const b = new Uint32Array(f.buffer)[0]
  const sign = (b >>> 16) & 0x8000
  const exp = ((b >>> 23) & 0xff) - 127 + 15
  const mant = b & 0x7fffff
  if (((b >>> 23) & 0xff) === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0)
  if (exp >= 0x1f) return sign | 0x7c00
  if (exp <= 0) {
    if (exp < -10) return sign
    const m = (mant | 0x800000) >> (1 - exp)
    return sign | ((m + 0x1000) >> 13)
  }
  return sign | ((exp << 10) + ((mant + 0x1000) >> 13))
}
