import {Config} from '@oclif/core'
import {vi} from 'vitest'

import InspectLayout from '../commands/inspect-layout.js'
import {packageRoot} from '../native/load-addon.js'
import {documentedErrorCodes} from './documented-codes.js'
import type {FuzzCase} from './inspect-fuzz.js'

/** What one `hpd inspect-layout ... --json` run left behind. */
export interface InspectOutcome {
  readonly exitCode: number
  readonly stdout: string
  /** Set when the process died of a signal (CLI runs only). */
  readonly signal?: string | null
}

let config: Config | undefined
/** In-process runs share process.stdout and process.exitCode: one at a time. */
let previous: Promise<unknown> = Promise.resolve()

/**
 * Runs the real `inspect-layout` command class in this process (flag parsing, model loading,
 * planning, the JSON envelope and the exit code), as `hpd inspect-layout` would. Calls are
 * serialized, so concurrent callers never read each other's output.
 */
export function runInspectInProcess(argv: readonly string[]): Promise<InspectOutcome> {
  const run = previous.then(() => runOnce(argv))
  previous = run.catch(() => undefined)
  return run
}

async function runOnce(argv: readonly string[]): Promise<InspectOutcome> {
  config ??= await Config.load(packageRoot())
  let stdout = ''
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((stdout += String(chunk)), true))
  vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
  process.exitCode = undefined
  try {
    await InspectLayout.run([...argv], config)
  } finally {
    vi.restoreAllMocks()
  }
  const exitCode = Number(process.exitCode ?? 0)
  process.exitCode = undefined
  return {exitCode, stdout}
}

const SAFE = 2 ** 53
const documented = documentedErrorCodes()

/**
 * The fuzz invariants for one outcome; returns what is wrong (empty when nothing is):
 * no signal, no exit 1, exit 0 only with every number in the result finite and below 2^53,
 * every failure one JSON envelope with a documented code whose exit code is the process's,
 * and no planted secret anywhere in an error.
 */
export function inspectProblems(c: FuzzCase, outcome: InspectOutcome): string[] {
  const problems: string[] = []
  const where = `case ${c.index} (${c.label}) [${c.argv.join(' ').slice(0, 300)}]`
  if (outcome.signal) return [`${where}: killed by ${outcome.signal}`]
  let envelope: {ok?: unknown; result?: unknown; error?: {code?: unknown; message?: unknown}}
  try {
    envelope = JSON.parse(outcome.stdout)
  } catch {
    return [`${where}: exit ${outcome.exitCode} without a JSON envelope on stdout: ${outcome.stdout.slice(0, 200)}`]
  }
  if (envelope.ok === true) {
    if (outcome.exitCode !== 0) problems.push(`${where}: ok envelope with exit ${outcome.exitCode}`)
    const bad = unsafeNumbers(envelope.result)
    if (bad.length > 0) problems.push(`${where}: exit 0 with sizes that cannot be: ${bad.slice(0, 5).join(', ')}`)
    return problems
  }
  const code = String(envelope.error?.code)
  if (!/^HPD_[A-Z0-9_]+$/u.test(code)) problems.push(`${where}: error code ${code} is not a stable UPPER_SNAKE code`)
  if (code.startsWith('HPD_BUG') || outcome.exitCode === 1) problems.push(`${where}: a bug: ${code} ${String(envelope.error?.message).slice(0, 200)}`)
  const exit = documented.exitOf(code)
  if (exit === undefined) problems.push(`${where}: ${code} is not in the README's error-code table`)
  else if (exit !== outcome.exitCode) problems.push(`${where}: ${code} exited ${outcome.exitCode}, documented ${exit}`)
  if (typeof envelope.error?.message !== 'string' || envelope.error.message === '') problems.push(`${where}: ${code} has no message`)
  const shown = JSON.stringify(envelope.error)
  for (const secret of c.secrets) if (shown.includes(secret)) problems.push(`${where}: ${code} shows file text ${secret}`)
  return problems
}

/** Paths of numbers in `value` that are not finite or not below 2^53 in magnitude. Iterative: results can be deep. */
function unsafeNumbers(value: unknown): string[] {
  const found: string[] = []
  const stack: [unknown, string][] = [[value, 'result']]
  while (stack.length > 0) {
    const [v, path] = stack.pop()!
    if (typeof v === 'number' && !(Number.isFinite(v) && Math.abs(v) < SAFE)) found.push(`${path} = ${v}`)
    else if (Array.isArray(v)) v.forEach((x, i) => stack.push([x, `${path}[${i}]`]))
    else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) stack.push([x, `${path}.${k}`])
  }
  return found
}
