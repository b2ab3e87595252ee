import {planLayout, planRequestReads, type LayoutPlan, type RequestReadPlan, tensorSizeBytes} from '../../layout/index.js'
import {loadModelSpec} from '../../model/index.js'
import type {BenchTransferOptions} from './types.js'

/** The layout engine's plans for every case; both workers compute the same (pure, deterministic). */
export interface BenchPlan {
  readonly plan: LayoutPlan
  /** [case] → the request's reads (default block ids, the same for every request of a case). */
  readonly requests: readonly RequestReadPlan[]
  /** Size of each shared tensor on one prefill / decode rank: enough for the largest case. */
  readonly prefillTensorBytes: number
  readonly decodeTensorBytes: number
}

export function planBench(options: BenchTransferOptions): BenchPlan {
  const model = loadModelSpec(options.model)
  const plan = planLayout({
    model,
    prefillTp: options.prefillTp,
    decodeTp: options.decodeTp,
    attentionBackend: options.attentionBackend,
    kvCacheDtype: options.kvCacheDtype,
    blockSize: options.blockSize,
  })
  const requests = options.promptTokens.map((promptTokens) => planRequestReads(plan, {promptTokens}))
  const prefillTensorBytes = Math.max(...requests.map((r) => tensorSizeBytes(plan.prefill, r.prefillNumLogicalBlocks)))
  const decodeTensorBytes = Math.max(...requests.map((r) => tensorSizeBytes(plan.decode, r.decodeNumLogicalBlocks)))
  return {plan, requests, prefillTensorBytes, decodeTensorBytes}
}

/** Where injected faults strike: the middle read of the last rank pair that reads anything, in case 0, request 0. */
export function faultTarget(req: RequestReadPlan): {pairIndex: number; readIndex: number} {
  let pairIndex = req.pairs.length - 1
  while (pairIndex > 0 && req.pairs[pairIndex].reads.count === 0) pairIndex--
  return {pairIndex, readIndex: Math.floor(req.pairs[pairIndex].reads.count / 2)}
}

/** The pattern request id that "stale" data carries: the previous request's. */
export function previousRequest(request: number): number {
  return request === 0 ? 0xffffffff : request - 1
}

/** Notification payloads between decode and prefill ranks. */
export function readDoneMessage(caseIndex: number, request: number): string {
  return JSON.stringify({read: [caseIndex, request]})
}
export function freedMessage(caseIndex: number, request: number): string {
  return JSON.stringify({freed: [caseIndex, request]})
}
