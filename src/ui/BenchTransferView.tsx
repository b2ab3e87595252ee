import {Box, Static, Text} from 'ink'

import {caseLine} from './bench-transfer-format.js'
import type {BenchTransferViewState} from './bench-transfer-state.js'

/** Finished cases stay above (Static); the case in progress is the live row below. Renders state only. */
export function BenchTransferView({state}: {readonly state: BenchTransferViewState}) {
  return (
    <Box flexDirection="column">
      <Static items={state.finished.map((c, i) => ({key: `${i}`, c}))}>{(item) => <Text key={item.key}>✔ {caseLine(item.c)}</Text>}</Static>
      {state.setup ? (
        <Text dimColor>
          registration {state.setup.registrationMs.toFixed(1)} ms · first handshake {state.setup.firstHandshakeMs.toFixed(1)} ms
        </Text>
      ) : (
        <Text>starting prefill and decode processes…</Text>
      )}
      {state.current ? (
        <Text>
          prompt {state.current.promptTokens}: request {state.current.done}/{state.current.requests}
          {state.current.lastLatencyMs === undefined ? ' (warm-up)' : ` · last ${state.current.lastLatencyMs.toFixed(2)} ms`}
        </Text>
      ) : null}
    </Box>
  )
}
