/**
 * Drives `hpd bench transfer`'s output from its event stream: Ink on a terminal (stderr), plain
 * lines when stderr is not a terminal or in CI, nothing but the JSON result with --json.
 */
import {render} from 'ink'
import {createElement} from 'react'

import type {BenchEvent, BenchTransferResult} from '../bench/transfer/types.js'
import {caseLine, resultText} from './bench-transfer-format.js'
import {type BenchTransferViewState, foldBenchEvent, initialBenchTransferState} from './bench-transfer-state.js'
import {BenchTransferView} from './BenchTransferView.js'

export async function showBenchTransfer(events: AsyncGenerator<BenchEvent, BenchTransferResult>, json: boolean): Promise<BenchTransferResult> {
  const tty = Boolean(process.stderr.isTTY) && !process.env.CI && !json
  let state: BenchTransferViewState = initialBenchTransferState
  const ink = tty ? render(createElement(BenchTransferView, {state}), {stdout: process.stderr, patchConsole: false}) : undefined
  const plain = (line: string): void => {
    if (!tty && !json) process.stderr.write(`${line}\n`)
  }
  try {
    for (;;) {
      const next = await events.next()
      if (next.done) return next.value
      const ev = next.value
      state = foldBenchEvent(state, ev)
      if (ev.type === 'setup') plain(`registration ${ev.registrationMs.toFixed(1)} ms, first handshake ${ev.firstHandshakeMs.toFixed(1)} ms`)
      if (ev.type === 'case-done') plain(caseLine(ev.result))
      ink?.rerender(createElement(BenchTransferView, {state}))
    }
  } finally {
    ink?.unmount()
  }
}

/** The final table for stdout (human form). */
export const benchTransferText = resultText
