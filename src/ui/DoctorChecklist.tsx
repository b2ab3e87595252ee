import {Box, Text} from 'ink'

import type {DoctorCheck, DoctorReport} from '../doctor/types.js'
import {ID_COLUMN_WIDTH, STATUS_COLOR, STATUS_SYMBOL, VERDICT_COLOR, countsText, groupChecks, sourceText} from './doctor-style.js'

export interface DoctorChecklistProps {
  readonly report: DoctorReport
  /** Columns to lay out in; the terminal width when omitted. */
  readonly width?: number
}

/** The finished doctor report: checks grouped, coloured by status, hints dimmed, verdict last. Renders state only. */
export function DoctorChecklist({report, width}: DoctorChecklistProps) {
  return (
    <Box flexDirection="column" width={width}>
      <Text bold>hpd doctor: {sourceText(report)}</Text>
      {groupChecks(report).map((group) => (
        <Box key={group.group} flexDirection="column" marginTop={1}>
          <Text bold underline>
            {group.title}
          </Text>
          {group.checks.map((check) => (
            <CheckRow key={check.id} check={check} />
          ))}
        </Box>
      ))}
      <Box marginTop={1} flexDirection="column">
        <Text>{report.headline}</Text>
        <Text bold color={VERDICT_COLOR[report.verdict]}>
          verdict: {report.verdict} ({countsText(report)})
        </Text>
      </Box>
    </Box>
  )
}

function CheckRow({check}: {readonly check: DoctorCheck}) {
  const color = STATUS_COLOR[check.status]
  return (
    <Box flexDirection="row">
      <Box width={2} flexShrink={0}>
        <Text color={color}>{STATUS_SYMBOL[check.status]}</Text>
      </Box>
      <Box width={ID_COLUMN_WIDTH + 1} flexShrink={0}>
        <Text color={color} bold={check.status === 'fail'}>
          {check.id}
        </Text>
      </Box>
      <Box flexDirection="column" flexGrow={1} flexShrink={1}>
        <Text dimColor={check.status === 'skip'}>{check.summary}</Text>
        {check.hint ? <Text dimColor>hint: {check.hint}</Text> : null}
      </Box>
    </Box>
  )
}
