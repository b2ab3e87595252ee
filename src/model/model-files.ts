import {closeSync, constants, fstatSync, openSync, readSync, type Stats} from 'node:fs'

import {type HpdError, UsageError} from '../errors.js'

/**
 * The largest model files hpd reads whole into memory (documented in the README, "Limits"). A
 * published config.json is a few KiB, the largest tokenizer.json about 35 MiB, a safetensors index
 * under 1 MiB; the caps leave room for growth while keeping `--model /dev/zero`, a 5 GB weights
 * file given as a config, or a runaway JSON from holding the process.
 */
export const FILE_LIMITS = {
  configBytes: 4 * 1024 * 1024,
  tokenizerBytes: 256 * 1024 * 1024,
  tokenizerConfigBytes: 16 * 1024 * 1024,
  indexBytes: 64 * 1024 * 1024,
} as const

/** What a file is for, in messages ("config.json", "tokenizer.json") and which cap applies. */
export interface ModelFileKind {
  readonly what: string
  readonly maxBytes: number
}

/**
 * Opens `path` for reading without ever blocking and checks, on the open descriptor (fstat, so the
 * check and the read see the same file), that it is a regular file. FIFOs open without waiting for
 * a writer (O_NONBLOCK) and are then refused like devices, sockets and directories. Returns the fd
 * and its stats; the caller owns the fd and closes it on every path.
 */
export function openRegularFile(path: string, what: string): {fd: number; stats: Stats} {
  let fd: number
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
  } catch (error) {
    throw unreadable(path, what, error)
  }
  let stats: Stats
  try {
    stats = fstatSync(fd)
  } catch (error) {
    closeSync(fd)
    throw unreadable(path, what, error)
  }
  if (!stats.isFile()) {
    closeSync(fd)
    throw new UsageError('HPD_MODEL_NOT_A_FILE', `${path} is ${fileKind(stats)}, not a ${what} file`, {
      hint: `Point --model at a model directory or its config.json; ${what} must be a regular file.`,
      details: {path, kind: fileKind(stats)},
    })
  }
  return {fd, stats}
}

/**
 * The bytes of a model file (config.json, tokenizer.json, an index), refused before reading when
 * it is not a regular file or is larger than `kind.maxBytes`. Reads at most maxBytes + 1 bytes, so
 * a file that grows after the check (or reports size 0, as /proc files do) is still bounded.
 */
export function readModelFile(path: string, kind: ModelFileKind): Buffer {
  const {fd, stats} = openRegularFile(path, kind.what)
  try {
    if (stats.size > kind.maxBytes) throw tooLarge(path, kind, stats.size)
    const limit = kind.maxBytes + 1
    let buffer = Buffer.alloc(Math.min(limit, Math.max(stats.size, 64 * 1024)))
    let length = 0
    for (;;) {
      if (length === buffer.length) {
        if (length >= limit) throw tooLarge(path, kind, length)
        const grown = Buffer.alloc(Math.min(limit, 2 * buffer.length))
        buffer.copy(grown, 0, 0, length)
        buffer = grown
      }
      let n: number
      try {
        n = readSync(fd, buffer, length, buffer.length - length, length)
      } catch (error) {
        throw unreadable(path, kind.what, error)
      }
      if (n === 0) break
      length += n
    }
    return buffer.subarray(0, length)
  } finally {
    closeSync(fd)
  }
}

/**
 * A model file parsed as JSON. Syntax errors become `badJson(where)`: the message says where the
 * JSON breaks (line and column), never what the file says there (V8's own message quotes the text,
 * and the file may be anything a user pointed --model at, a secret included).
 */
export function readModelJson(path: string, kind: ModelFileKind, badJson: (where: string) => HpdError): unknown {
  const text = readModelFile(path, kind).toString('utf8')
  try {
    return JSON.parse(text)
  } catch (error) {
    // No `cause`: V8's message quotes the file's text.
    throw badJson(jsonErrorPlace(error, text))
  }
}

/**
 * " at line 3 column 7": where `text` stops being JSON, from V8's position when its message has one,
 * else found by bisection (V8 says "Unexpected token" without a position; the shortest prefix that
 * fails before its own end ends at the bad character). Numbers only.
 */
export function jsonErrorPlace(error: unknown, text?: string): string {
  const message = error instanceof Error ? error.message : ''
  const position = /position (\d+)/u.exec(message)
  let at = position ? Number(position[1]) : undefined
  // Bisection re-parses up to ~log2(n) prefixes: worth it for a config, not for a 200 MB tokenizer.
  if (at === undefined && text !== undefined && text.length <= FILE_LIMITS.configBytes) at = firstBadIndex(text)
  if (at === undefined) return /Unexpected end of JSON input/u.test(message) ? ' (it ends early)' : ''
  if (text === undefined) return ` at byte ${at}`
  const before = text.slice(0, at)
  const line = before.split('\n').length
  const column = at - before.lastIndexOf('\n')
  return ` at line ${line} column ${column}`
}

function firstBadIndex(text: string): number | undefined {
  const failsInside = (length: number): boolean => {
    try {
      JSON.parse(text.slice(0, length))
      return false
    } catch (error) {
      // An incomplete prefix fails at its end ("end of input", or a position equal to its length).
      const message = (error as Error).message
      const at = /position (\d+)/u.exec(message)
      return at ? Number(at[1]) < length : !/Unexpected end of JSON input/u.test(message)
    }
  }
  if (!failsInside(text.length)) return undefined
  let lo = 0
  let hi = text.length // failsInside(hi) holds; find the smallest such length
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2)
    if (failsInside(mid)) hi = mid
    else lo = mid
  }
  return hi - 1
}

function fileKind(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory'
  if (stats.isCharacterDevice()) return 'a character device'
  if (stats.isBlockDevice()) return 'a block device'
  if (stats.isFIFO()) return 'a FIFO'
  if (stats.isSocket()) return 'a socket'
  return 'not a regular file'
}

function tooLarge(path: string, kind: ModelFileKind, sizeBytes: number): UsageError {
  return new UsageError('HPD_MODEL_FILE_TOO_LARGE', `${path} is ${sizeBytes} bytes or more; hpd reads a ${kind.what} of at most ${kind.maxBytes} bytes`, {
    hint: `Check that --model names the right file: a ${kind.what} is far smaller than this.`,
    details: {path, sizeBytes, maxBytes: kind.maxBytes},
  })
}

function unreadable(path: string, what: string, error: unknown): UsageError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code ?? 'EIO'
  if (code === 'ENOENT') {
    return new UsageError('HPD_MODEL_NOT_FOUND', `${path} does not exist (${what})`, {
      hint: 'Pass a preset name, a config.json file or a model directory holding config.json.',
      details: {path},
    })
  }
  return new UsageError('HPD_MODEL_UNREADABLE', `cannot read ${what} ${path}: ${code}`, {hint: 'Check the path and its permissions.', details: {path, errno: code}})
}
