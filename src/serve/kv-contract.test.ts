import {describe, expect, it} from 'vitest'

import {KvParamsError, kvParamsOf, parseKvTransferParams, PREFILL_LEG_PARAMS} from './kv-contract.js'
import type {TransferParams} from './protocol.js'

const transfer: TransferParams = {
  engineId: 'prefill-a',
  engineEpoch: '2f0c9b1e-epoch',
  handshakeUrl: 'http://198.18.0.11:8101',
  requestId: 'cmpl-abc',
  blockIds: [[3, 4], [9]],
  tpSize: 2,
  compatibilityHash: 'ab'.repeat(32),
  numComputedTokens: 99,
  leaseExpiresAtMs: 1_800_000_000_000,
  grant: '0123456789abcdef0123456789abcdef',
}

function refusal(value: unknown): {param: string; message: string} {
  try {
    parseKvTransferParams(value)
  } catch (error) {
    if (error instanceof KvParamsError) return {param: error.param, message: error.message}
    throw error
  }
  throw new Error('accepted')
}

describe("vLLM's kv_transfer_params", () => {
  it('reads the prefill leg as vLLM’s proxy sends it, and no params as no leg', () => {
    expect(parseKvTransferParams(PREFILL_LEG_PARAMS)).toEqual({leg: 'prefill'})
    expect(parseKvTransferParams(undefined)).toEqual({leg: 'none'})
    expect(parseKvTransferParams(null)).toEqual({leg: 'none'})
    expect(parseKvTransferParams({do_remote_prefill: false, do_remote_decode: false})).toEqual({leg: 'none'})
  })

  it('maps the prefill answer back to the same transfer on the decode leg (as a proxy copies it)', () => {
    const copied = JSON.parse(JSON.stringify(kvParamsOf(transfer))) as unknown
    expect(parseKvTransferParams(copied)).toEqual({leg: 'decode', transfer})
  })

  it('computes locally, naming what is missing, when a decode leg lacks fields', () => {
    const {remote_block_ids: _, hpd_engine_epoch: __, ...rest} = kvParamsOf(transfer)
    expect(parseKvTransferParams(rest)).toEqual({leg: 'incomplete', missing: ['remote_block_ids', 'hpd_engine_epoch']})
    expect(parseKvTransferParams({...kvParamsOf(transfer), remote_host: null})).toMatchObject({leg: 'incomplete', missing: ['remote_host']})
  })

  it('refuses unknown fields, wrong types and contradictions, naming the field', () => {
    expect(refusal('yes')).toMatchObject({param: 'kv_transfer_params'})
    expect(refusal({...kvParamsOf(transfer), remote_engine_id: 'a b'})).toMatchObject({param: 'kv_transfer_params.remote_engine_id'})
    expect(refusal({...kvParamsOf(transfer), remote_port: 70_000})).toMatchObject({param: 'kv_transfer_params.remote_port'})
    expect(refusal({...kvParamsOf(transfer), remote_block_ids: [[-1]]})).toMatchObject({param: 'kv_transfer_params.remote_block_ids'})
    expect(refusal({...kvParamsOf(transfer), remote_host: 'evil.example/../x'})).toMatchObject({param: 'kv_transfer_params.remote_host'})
    expect(refusal({...kvParamsOf(transfer), nixl_agent_metadata: 'x'})).toMatchObject({param: 'kv_transfer_params.nixl_agent_metadata'})
    expect(refusal(JSON.parse('{"__proto__": 1, "do_remote_decode": true}'))).toMatchObject({param: 'kv_transfer_params.__proto__'})
    expect(refusal({do_remote_decode: true, do_remote_prefill: true})).toMatchObject({param: 'kv_transfer_params.do_remote_prefill'})
  })
})
