// The fuzz sample through the built CLI (`node bin/run.js inspect-layout ... --json`, dist/): the
// cases issue 9 found plus a seeded sample of the in-process fuzz's cases
// (src/commands/inspect-layout.fuzz.test.ts). Proves what only a process shows: no signal, no
// V8 abort, the exit code a shell sees, one envelope on stdout; and that the CLI answers each case
// exactly as the in-process command does.
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {execa} from 'execa'
import {afterAll, describe, expect, it} from 'vitest'

import {type FuzzCase, inspectFuzzCases, knownHostileCases} from '../../src/testing/inspect-fuzz.js'
import {type InspectOutcome, inspectProblems, runInspectInProcess} from '../../src/testing/inspect-outcome.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const scratch = mkdtempSync(join(tmpdir(), 'hpd-inspect-fuzz-cli-'))
afterAll(() => rmSync(scratch, {recursive: true, force: true}))

/** Generous: a case takes ~0.3 s; a hang or an out-of-memory crawl is what this bound catches. */
const CASE_TIMEOUT_MS = 30_000
const SAMPLE = 30

async function runCli(c: FuzzCase): Promise<InspectOutcome> {
  // NODE_ENV=production: oclif runs dist/ as an installed CLI does.
  const run = await execa('node', ['bin/run.js', 'inspect-layout', ...c.argv], {cwd: ROOT, reject: false, timeout: CASE_TIMEOUT_MS, env: {NODE_ENV: 'production'}})
  return {exitCode: run.exitCode ?? -1, stdout: run.stdout, signal: run.timedOut ? 'timeout' : (run.signal ?? null)}
}

function codeOf(outcome: InspectOutcome): string {
  try {
    return JSON.parse(outcome.stdout).error?.code ?? 'ok'
  } catch {
    return 'no envelope'
  }
}

describe('inspect-layout fuzz (built CLI)', () => {
  it(`known hostile inputs and ${SAMPLE} seeded cases: no signal, documented exits, the same answer as in process`, async () => {
    const cases = [...knownHostileCases(scratch), ...inspectFuzzCases(0x4e1, SAMPLE, scratch, 9_000_000)]
    const problems: string[] = []
    // Two at a time: the machine has two cores and the suite runs other files beside this one.
    const queue = [...cases]
    const worker = async () => {
      for (let c = queue.shift(); c; c = queue.shift()) {
        const cli = await runCli(c)
        problems.push(...inspectProblems(c, cli))
        const inProcess = await runInspectInProcess(c.argv)
        if (codeOf(cli) !== codeOf(inProcess) || cli.exitCode !== inProcess.exitCode) {
          problems.push(`case ${c.index} (${c.label}): CLI ${codeOf(cli)}/${cli.exitCode}, in process ${codeOf(inProcess)}/${inProcess.exitCode}`)
        }
      }
    }
    await Promise.all([worker(), worker()])
    expect(problems).toEqual([])
  })
})
