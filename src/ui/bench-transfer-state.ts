import type {BenchEvent, TransferCaseResult} from '../bench/transfer/types.js'

/** What the `hpd bench transfer` view shows, folded from the bench's event stream (pure). */
export interface BenchTransferViewState {
  readonly setup?: {readonly registrationMs: number; readonly firstHandshakeMs: number}
  readonly current?: {readonly promptTokens: number; readonly done: number; readonly requests: number; readonly lastLatencyMs?: number}
  readonly finished: readonly TransferCaseResult[]
}

export const initialBenchTransferState: BenchTransferViewState = {finished: []}

export function foldBenchEvent(state: BenchTransferViewState, ev: BenchEvent): BenchTransferViewState {
  switch (ev.type) {
    case 'setup':
      return {...state, setup: {registrationMs: ev.registrationMs, firstHandshakeMs: ev.firstHandshakeMs}}
    case 'case-start':
      return {...state, current: {promptTokens: ev.promptTokens, done: 0, requests: ev.requests}}
    case 'progress':
      return state.current ? {...state, current: {...state.current, done: ev.done, lastLatencyMs: ev.latencyMs}} : state
    case 'case-done':
      return {...state, current: undefined, finished: [...state.finished, ev.result]}
    case 'summary':
      return state
  }
}
