// The README's error-code table against the sources: every code that model loading, config
// parsing, flag checks and the layout engine can throw is listed, with its class's exit code.
// serve's and the cluster's start-up checks too. (Codes of the HTTP API and of transfers and doctor
// are documented in their folders' READMEs.)
import {readdirSync, readFileSync, statSync} from 'node:fs'
import {join, relative} from 'node:path'
import {fileURLToPath} from 'node:url'

import {describe, expect, it} from 'vitest'

import {EXIT_CODES} from '../errors.js'
import {documentedErrorCodes} from '../testing/documented-codes.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const SRC = join(ROOT, 'src')

/** The sources whose codes the README table must list. */
const CHECKED = [
  'model',
  'layout',
  'cli',
  'commands',
  'errors.ts',
  'engine/load-model.ts',
  'engine/model-dims.ts',
  'engine/generate.ts',
  'engine/tokenizer.ts',
  'engine/weights.ts',
  'engine/safetensors.ts',
  'bench/transfer/options.ts',
  'serve/serve-model.ts',
  'serve/serve.ts',
  'serve/serve-session.ts',
  'serve/worker-session.ts',
  'serve/secrets.ts',
  'serve/bind-policy.ts',
  'cluster',
]

const EXIT_OF_CLASS: Readonly<Record<string, number>> = {
  BugError: EXIT_CODES.bug,
  UsageError: EXIT_CODES.usage,
  ModelConfigError: EXIT_CODES.modelConfig,
  EnvironmentError: EXIT_CODES.environment,
  NativeError: EXIT_CODES.native,
  VerificationError: EXIT_CODES.verification,
}

function sources(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path]
  return readdirSync(path).flatMap((name) => sources(join(path, name)))
}

function checkedFiles(): string[] {
  return CHECKED.flatMap((p) => sources(join(SRC, p))).filter((f) => /\.tsx?$/u.test(f) && !/\.test\.tsx?$/u.test(f))
}

/** Error codes written in `text`: HPD_ literals, minus flag environment variables (`env: 'HPD_TP'`). */
function codesIn(text: string): Set<string> {
  const envNames = new Set([...text.matchAll(/env:\s*'(HPD_[A-Z0-9_]+)'/gu)].map((m) => m[1]))
  const codes = new Set<string>()
  for (const m of text.matchAll(/'(HPD_[A-Z0-9_]*[A-Z0-9])'/gu)) if (!envNames.has(m[1])) codes.add(m[1])
  return codes
}

describe('README error-code table', () => {
  const documented = documentedErrorCodes()

  it('lists every code the checked sources can throw', () => {
    const missing: string[] = []
    for (const file of checkedFiles()) {
      for (const code of codesIn(readFileSync(file, 'utf8'))) {
        if (documented.exitOf(code) === undefined) missing.push(`${code} (${relative(ROOT, file)})`)
      }
    }
    expect(missing).toEqual([])
  })

  it('gives each code the exit code of the class that throws it', () => {
    const wrong: string[] = []
    for (const file of checkedFiles()) {
      const text = readFileSync(file, 'utf8')
      for (const m of text.matchAll(/new (\w+Error)\(\s*'(HPD_[A-Z0-9_]+)'/gu)) {
        const expected = EXIT_OF_CLASS[m[1]]
        const listed = documented.exitOf(m[2])
        if (expected !== undefined && listed !== undefined && listed !== expected) wrong.push(`${m[2]}: README ${listed}, ${m[1]} ${expected} (${relative(ROOT, file)})`)
      }
    }
    expect(wrong).toEqual([])
  })

  it('reads the table it checks (the parser itself works)', () => {
    expect(documented.exitOf('HPD_MODEL_NOT_A_FILE')).toBe(2)
    expect(documented.exitOf('HPD_MODEL_BAD_KEY')).toBe(3)
    expect(documented.exitOf('HPD_NATIVE_TIMEOUT')).toBe(5)
    expect(documented.exitOf('HPD_BUG_UNCOVERED_UNITS')).toBe(1)
    expect(documented.exitOf('HPD_NO_SUCH_CODE')).toBeUndefined()
    expect(codesIn(`Flags.integer({env: 'HPD_TP'}); new UsageError('HPD_USAGE_BAD_TP', 'x')`)).toEqual(new Set(['HPD_USAGE_BAD_TP']))
  })
})
