import {join} from 'node:path'

import {describe, expect, it} from 'vitest'

import {thrown} from '../testing/thrown.js'
import {loadModelSpec, parseModelConfig} from '../model/index.js'
import {judgeVllmVersion, NEWEST_VLLM, planLayout} from './index.js'
import type {PlanLayoutOptions} from './types.js'

// Each vLLM pitfall judged at a release where it applies and one where it does not: the release
// that carries its fix, or (still open) a newer one where it still applies, plus for release-bounded
// ones the release before they start.
const fixtures = join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'configs')
const tiny = loadModelSpec('tiny-hybrid')
const k2tiny = parseModelConfig({...(tiny.config as object), num_key_value_heads: 2, n_groups: 4})
const cpu = {attentionBackend: 'cpu'} as const
const scenarios: Record<string, Omit<PlanLayoutOptions, 'vllmVersion'>> = {
  tiny: {model: tiny, prefillTp: 1, decodeTp: 1, ...cpu},
  tinyHetero: {model: tiny, prefillTp: 2, decodeTp: 1, ...cpu},
  h8bBlock128: {model: loadModelSpec('nemotron-h-8b'), prefillTp: 1, decodeTp: 1, blockSize: 128},
  logicalDiffer: {model: k2tiny, prefillTp: 4, decodeTp: 2, blockSize: 128, ...cpu},
  kernelDiffer: {model: loadModelSpec(join(fixtures, 'nemotron-h-kv2-shaped.json')), prefillTp: 4, decodeTp: 2},
  g1Hetero: {model: loadModelSpec('tiny-hybrid-g1'), prefillTp: 2, decodeTp: 1, ...cpu},
  gdn: {model: loadModelSpec(join(fixtures, 'qwen3-next-shaped.json')), prefillTp: 1, decodeTp: 1},
  mamba1: {model: loadModelSpec(join(fixtures, 'jamba-shaped.json')), prefillTp: 1, decodeTp: 1},
  fp8: {model: tiny, prefillTp: 1, decodeTp: 1, kvCacheDtype: 'fp8', ...cpu},
  llama: {model: loadModelSpec('tiny-llama'), prefillTp: 1, decodeTp: 2, ...cpu},
}

const codesAt = (scenario: string, vllmVersion: string): string[] => planLayout({...scenarios[scenario], vllmVersion}).vllmPitfalls.map((p) => p.code)

describe('vLLM pitfalls by release', () => {
  it.each([
    // code, scenario, applies at, does not apply at (fixed there, or before it starts)
    ['VLLM_HMA_FLAG_REQUIRED', 'tiny', '0.21', '0.22'],
    ['VLLM_REMOTE_RATIO_ESTIMATE_WRONG', 'h8bBlock128', '0.21', '0.22'],
    ['VLLM_BLOCK_RATIO_MISMATCH', 'logicalDiffer', '0.20', '0.22'],
    ['VLLM_PREFIX_CACHING_UNSUPPORTED', 'tiny', '0.24', '0.25'],
    ['VLLM_PREFIX_CACHING_HETERO_BLOCKS', 'logicalDiffer', '0.25', '0.24'],
    ['VLLM_STATE_MIXER_UNSUPPORTED', 'gdn', '0.21', '0.22'],
    ['VLLM_STATE_MIXER_UNSUPPORTED', 'mamba1', '0.23', '0.24'],
  ])('%s (%s): applies at %s, not at %s', (code, scenario, applies, not) => {
    expect(codesAt(scenario, applies)).toContain(code)
    expect(codesAt(scenario, not)).not.toContain(code)
  })

  it.each([
    // open pitfalls: apply from their first release through the newest known, only where their
    // condition holds (the second scenario, where one exists that fails it)
    ['VLLM_DS_CONV_LAYOUT_REQUIRED', 'tiny', 'llama'],
    ['VLLM_KERNEL_BLOCK_MISMATCH', 'kernelDiffer', 'logicalDiffer'],
    ['VLLM_NGROUPS1_HETERO_TP_CORRUPTION', 'g1Hetero', 'tinyHetero'],
    ['VLLM_ASYNC_SCHEDULING_TP', 'tinyHetero', 'tiny'],
    ['VLLM_STATE_DTYPE_NOT_HASHED', 'tiny', 'llama'],
    ['VLLM_FP8_SCALES_NOT_TRANSFERRED', 'fp8', 'tiny'],
    ['VLLM_PREFIX_CACHING_HETERO_BLOCKS', 'logicalDiffer', 'tinyHetero'],
  ])('%s (open): applies in %s from its first release to the newest known, not in %s', (code, scenario, other) => {
    const first = code === 'VLLM_PREFIX_CACHING_HETERO_BLOCKS' ? '0.25' : '0.20'
    expect(codesAt(scenario, first)).toContain(code)
    expect(codesAt(scenario, NEWEST_VLLM)).toContain(code)
    const pitfall = planLayout({...scenarios[scenario], vllmVersion: NEWEST_VLLM}).vllmPitfalls.find((p) => p.code === code)!
    expect(pitfall).toMatchObject({vllmVersion: NEWEST_VLLM, appliesTo: `>=${first}`, fixedIn: null})
    expect(codesAt(other, first)).not.toContain(code)
    expect(codesAt(other, NEWEST_VLLM)).not.toContain(code)
  })

  it('every pitfall carries the release it was judged against, its range and its fixing change', () => {
    const plan = planLayout({...scenarios.h8bBlock128, vllmVersion: '0.20.1'})
    expect(plan.vllmVersion).toEqual({requested: '0.20.1', judgedAgainst: '0.20', newestKnown: NEWEST_VLLM})
    expect(plan.vllmPitfalls.find((p) => p.code === 'VLLM_REMOTE_RATIO_ESTIMATE_WRONG')).toMatchObject({
      vllmVersion: '0.20',
      appliesTo: '>=0.20 <0.22',
      fixedIn: {version: '0.22', change: '#40731'},
    })
  })

  it('Qwen3-Next / Qwen3.5 at the newest release: GDN P/D and prefix caching are no longer reported (#41869, #42554, #44243)', () => {
    const codes = planLayout({...scenarios.gdn}).vllmPitfalls.map((p) => p.code)
    expect(codes).not.toContain('VLLM_STATE_MIXER_UNSUPPORTED')
    expect(codes).not.toContain('VLLM_PREFIX_CACHING_UNSUPPORTED')
    expect(codesAt('gdn', '0.20')).toEqual(expect.arrayContaining(['VLLM_STATE_MIXER_UNSUPPORTED', 'VLLM_PREFIX_CACHING_UNSUPPORTED']))
  })

  it('--vllm-version: patch levels and rc tags name their minor release; newer than the table → the newest known; older than 0.20 or not a version → exit 2', () => {
    expect(judgeVllmVersion('0.22.1').judgedAgainst).toBe('0.22')
    expect(judgeVllmVersion('v0.25.0rc1').judgedAgainst).toBe('0.25')
    expect(judgeVllmVersion(undefined)).toEqual({requested: NEWEST_VLLM, judgedAgainst: NEWEST_VLLM, newestKnown: NEWEST_VLLM})
    expect(judgeVllmVersion('1.2')).toMatchObject({requested: '1.2', judgedAgainst: NEWEST_VLLM})
    for (const bad of ['0.19', 'latest', '']) {
      const e = thrown(() => judgeVllmVersion(bad))
      expect([e.code, e.exitCode]).toEqual(['HPD_USAGE_BAD_VLLM_VERSION', 2])
    }
  })
})
