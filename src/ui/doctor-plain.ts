import type {DoctorReport} from '../doctor/types.js'
import {ID_COLUMN_WIDTH, countsText, groupChecks, sourceText} from './doctor-style.js'

/**
 * The doctor report as plain lines (pipes, CI, dumb terminals): no colour, no cursor movement,
 * one check per line with its hint below, the verdict last.
 */
export function formatDoctorPlain(report: DoctorReport): string {
  const lines = [`hpd doctor: ${sourceText(report)}`]
  for (const group of groupChecks(report)) {
    lines.push('', group.title)
    for (const c of group.checks) {
      lines.push(`  ${c.status.padEnd(4)}  ${c.id.padEnd(ID_COLUMN_WIDTH)}  ${c.summary}`)
      if (c.hint) lines.push(`  ${''.padEnd(4)}  ${''.padEnd(ID_COLUMN_WIDTH)}  hint: ${c.hint}`)
    }
  }
  lines.push('', report.headline, `verdict: ${report.verdict} (${countsText(report)})`)
  return `${lines.join('\n')}\n`
}
