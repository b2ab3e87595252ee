import {describe, expect, it} from 'vitest'

import {UsageError} from '../../errors.js'
import {benchTransferOptions, type BenchTransferFlags} from './options.js'

const flags: BenchTransferFlags = {
  model: 'tiny-hybrid',
  tp: 2,
  decodeTp: undefined,
  promptTokens: '512, 4096',
  requests: 8,
  transport: 'auto',
  tcpSegmentBytes: 262_144,
  readProtocol: 'auto',
  verify: 'full',
  injectFault: undefined,
  attentionBackend: 'cpu',
  kvCacheDtype: 'auto',
  blockSize: undefined,
  timeoutMs: 10_000,
}

describe('benchTransferOptions', () => {
  it('defaults the decode TP to the prefill TP and parses the prompt list', () => {
    expect(benchTransferOptions(flags)).toMatchObject({prefillTp: 2, decodeTp: 2, promptTokens: [512, 4096], verify: 'full', kvCacheDtype: 'auto'})
    expect(benchTransferOptions({...flags, kvCacheDtype: 'fp8', blockSize: 32})).toMatchObject({kvCacheDtype: 'fp8', blockSize: 32})
    expect(benchTransferOptions(flags)).toMatchObject({mambaConvDtype: 'auto', mambaSsmDtype: 'auto'})
    expect(benchTransferOptions({...flags, mambaCacheDtype: 'bf16', mambaSsmDtype: 'fp32'})).toMatchObject({mambaConvDtype: 'bf16', mambaSsmDtype: 'fp32'})
  })

  it.each([
    [{tp: 0}, /--tp must be an integer in \[1, 64\], got 0/],
    [{promptTokens: '512,1'}, /--prompt-tokens .* got "1"/],
    [{transport: 'rdma'}, /--transport must be one of auto\|shm\|tcp, got "rdma"/],
    [{verify: 'some'}, /--verify must be one of full\|digest\|off/],
    [{injectFault: 'flip'}, /--inject-fault must be one of corrupt\|stale\|short\|kill-peer/],
    [{injectFault: 'corrupt', verify: 'off'}, /corrupt needs --verify full or digest/],
    [{tcpSegmentBytes: 100}, /--tcp-segment-bytes must be 0/],
    [{readProtocol: 'rdma'}, /--read-protocol must be one of auto\|get\|served, got "rdma"/],
    [{kvCacheDtype: 'int4'}, /--kv-cache-dtype int4 is not a dtype/],
    [{mambaCacheDtype: 'int8'}, /--mamba-cache-dtype int8 is not a dtype/],
    [{mambaSsmDtype: 'f32'}, /--mamba-ssm-dtype f32 is not a dtype/],
    [{blockSize: 0}, /--block-size must be an integer in \[1, 1048576\], got 0/],
  ])('rejects %o naming the flag', (patch, message) => {
    expect(() => benchTransferOptions({...flags, ...patch})).toThrow(UsageError)
    expect(() => benchTransferOptions({...flags, ...patch})).toThrow(message)
  })
})
