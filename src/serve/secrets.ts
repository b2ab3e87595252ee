/**
 * Secrets from where `ps` cannot see them: a file (`--auth-token-file`, `--api-key-file`) or an
 * environment variable (HPD_AUTH_TOKEN, HPD_API_KEY). Never a flag value. A secret file must be a
 * small regular file; its contents are never quoted in an error.
 */
import {closeSync, constants, fstatSync, openSync, readSync} from 'node:fs'

import {UsageError} from '../errors.js'

/** Long enough that guessing is hopeless, short enough to fit a header. */
const MIN_CHARS = 16
const MAX_BYTES = 4096

export interface SecretSource {
  /** The flag that names the file (for messages): e.g. "auth-token-file". */
  readonly flag: string
  readonly file: string | undefined
  /** The environment variable, e.g. HPD_AUTH_TOKEN. */
  readonly envName: string
}

/** The secret, or undefined when neither the file nor the variable is given. */
export function readSecret(s: SecretSource, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const fromEnv = env[s.envName]
  if (s.file !== undefined) return check(s, readSmallFile(s), `--${s.flag}`)
  if (fromEnv !== undefined && fromEnv !== '') return check(s, fromEnv, s.envName)
  return undefined
}

function readSmallFile(s: SecretSource): string {
  let fd: number
  try {
    // Non-blocking: a FIFO without a writer would otherwise hang the start; it is refused below as not a regular file.
    fd = openSync(s.file!, constants.O_RDONLY | constants.O_NONBLOCK)
  } catch (error) {
    throw new UsageError('HPD_SECRET_UNREADABLE', `--${s.flag} ${s.file}: cannot open it (${(error as NodeJS.ErrnoException).code ?? 'error'})`, {
      hint: `Point --${s.flag} at a readable file holding the secret, or set ${s.envName}.`,
      details: {flag: s.flag},
    })
  }
  try {
    const st = fstatSync(fd)
    if (!st.isFile() || st.size > MAX_BYTES) {
      throw new UsageError('HPD_SECRET_UNREADABLE', `--${s.flag} ${s.file}: not a regular file of at most ${MAX_BYTES} bytes`, {
        hint: `Write the secret alone into a small file (e.g. \`openssl rand -base64 32 > token\`) and pass it with --${s.flag}.`,
        details: {flag: s.flag},
      })
    }
    const buf = Buffer.alloc(MAX_BYTES)
    const n = readSync(fd, buf, 0, MAX_BYTES, 0)
    return buf.subarray(0, n).toString('utf8')
  } finally {
    closeSync(fd)
  }
}

function check(s: SecretSource, raw: string, where: string): string {
  const secret = raw.trim()
  if (secret.length < MIN_CHARS || /[\s\x00-\x1f\x7f]/.test(secret)) {
    throw new UsageError('HPD_SECRET_WEAK', `${where}: the secret must be at least ${MIN_CHARS} characters with no spaces or control characters`, {
      hint: 'Generate one with `openssl rand -base64 32`.',
      details: {flag: s.flag},
    })
  }
  return secret
}
