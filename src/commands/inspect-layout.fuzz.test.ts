// Fuzz of `hpd inspect-layout`, in process: thousands of hostile configs and flag sets through the
// real command class (src/testing/inspect-fuzz.ts generates them, inspect-outcome.ts checks them).
// Fixed seeds; a smaller sample goes through the built CLI in test/e2e/inspect-layout-fuzz.test.ts.
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import type {InspectLayoutResult} from '../layout/present/inspect-result.js'
import {renderInspectSvg} from '../layout/present/svg.js'
import {renderInspectTable} from '../layout/present/table.js'
import {inspectFuzzCases, knownHostileCases} from '../testing/inspect-fuzz.js'
import {inspectProblems, runInspectInProcess} from '../testing/inspect-outcome.js'

const scratch = mkdtempSync(join(tmpdir(), 'hpd-inspect-fuzz-'))
afterAll(() => rmSync(scratch, {recursive: true, force: true}))

const SEEDS = [0x1d5, 0x2b7, 0x3c9]

/** Every plan the command returned must also render as the table and the SVG (what runs without --json). */
function renderProblems(index: number, result: InspectLayoutResult): string[] {
  try {
    renderInspectTable(result)
    renderInspectSvg(result)
    return []
  } catch (error) {
    return [`case ${index}: rendering failed: ${(error as Error).message}`]
  }
}
const CASES_PER_SEED = 800

describe('inspect-layout fuzz (in process)', () => {
  it('the inputs issue 9 found crashing or lying now fail with documented codes', async () => {
    const problems: string[] = []
    const codes: string[] = []
    for (const c of knownHostileCases(scratch)) {
      const outcome = await runInspectInProcess(c.argv)
      problems.push(...inspectProblems(c, outcome))
      codes.push(`${c.label}: ${JSON.parse(outcome.stdout).error?.code ?? 'ok'}`)
    }
    expect(problems).toEqual([])
    expect(codes).toEqual([
      'architectures ["constructor"]: HPD_MODEL_UNKNOWN_ARCHITECTURE',
      'architectures ["toString"]: HPD_MODEL_UNKNOWN_ARCHITECTURE',
      'architectures ["hasOwnProperty"]: HPD_MODEL_UNKNOWN_ARCHITECTURE',
      'architectures ["__proto__"]: HPD_MODEL_UNKNOWN_ARCHITECTURE',
      '--prompt-tokens 1e12: HPD_USAGE_BAD_PROMPT_TOKENS',
      '--descriptors --prompt-tokens 1e8: HPD_USAGE_BAD_PROMPT_TOKENS',
      '--prompt-tokens 2^53+1: HPD_USAGE_BAD_PROMPT_TOKENS',
      'head_dim 2^53: HPD_MODEL_BAD_KEY',
      'ssm_state_size 1e24: HPD_MODEL_BAD_KEY',
      '--model /dev/zero: HPD_MODEL_NOT_A_FILE',
      '--model secrets file: HPD_MODEL_BAD_JSON',
    ])
  })

  for (const seed of SEEDS) {
    it(`seed ${seed}: ${CASES_PER_SEED} mutated configs and flag sets — no exit 1, no size ≥ 2^53, documented codes, no file text`, async () => {
      const cases = inspectFuzzCases(seed, CASES_PER_SEED, scratch, seed * 10_000)
      const problems: string[] = []
      const outcomes = new Map<string, number>()
      for (const c of cases) {
        const outcome = await runInspectInProcess(c.argv)
        problems.push(...inspectProblems(c, outcome))
        const code = outcome.exitCode === 0 ? 'ok' : String(JSON.parse(outcome.stdout).error?.code)
        if (code === 'ok') problems.push(...renderProblems(c.index, JSON.parse(outcome.stdout).result))
        outcomes.set(code, (outcomes.get(code) ?? 0) + 1)
      }
      expect(problems).toEqual([])
      // The generator reaches both sides: successful plans and many distinct refusals.
      expect(outcomes.get('ok') ?? 0).toBeGreaterThan(CASES_PER_SEED / 20)
      expect(outcomes.size).toBeGreaterThan(12)
    })
  }
})
