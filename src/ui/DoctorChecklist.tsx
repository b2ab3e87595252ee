import {Box, Text, useStdout} from 'ink'

import type {DoctorCheck, DoctorReport} from '../doctor/types.js'
import {ID_COLUMN_WIDTH, STATUS_COLOR, STATUS_SYMBOL, SUMMARY_INDENT, VERDICT_COLOR, countsText, groupChecks, titleText, wrapWords} from './doctor-style.js'

export interface DoctorChecklistProps {
  readonly report: DoctorReport
  /** Columns to lay out in; the terminal's width when omitted. */
  readonly width?: number
}

/** The finished doctor report: checks grouped, coloured by status, hints dimmed, verdict last. Renders state only. */
export function DoctorChecklist({report, width}: DoctorChecklistProps) {
  const {stdout} = useStdout()
  const columns = width ?? (stdout.columns || 80)
  return (
    <Box flexDirection="column" width={columns}>
      <Text bold>{titleText(report, columns)}</Text>
      {groupChecks(report).map((group) => (
        <Box key={group.group} flexDirection="column" marginTop={1}>
          <Text bold underline>
            {group.title}
          </Text>
          {group.checks.map((check) => (
            <CheckRow key={check.id} check={check} textWidth={columns - SUMMARY_INDENT} />
          ))}
        </Box>
      ))}
      <Box marginTop={1} flexDirection="column">
        {wrapWords(report.headline, columns).map((line, i) => (
          <Text key={i}>{line}</Text>
        ))}
        <Text bold color={VERDICT_COLOR[report.verdict]}>
          verdict: {report.verdict} ({countsText(report)})
        </Text>
      </Box>
    </Box>
  )
}

function CheckRow({check, textWidth}: {readonly check: DoctorCheck; readonly textWidth: number}) {
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
      <Box flexDirection="column" flexGrow={1}>
        {wrapWords(check.summary, textWidth).map((line, i) => (
          <Text key={i} dimColor={check.status === 'skip'} wrap="truncate">
            {line}
          </Text>
        ))}
        {check.hint
          ? wrapWords(`hint: ${check.hint}`, textWidth).map((line, i) => (
              <Text key={`hint-${i}`} dimColor wrap="truncate">
                {line}
              </Text>
            ))
          : null}
      </Box>
    </Box>
  )
}
