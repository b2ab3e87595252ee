import type {CheckGroup, CheckStatus, DoctorCheck, DoctorReport, Verdict} from '../doctor/types.js'
import {CHECK_GROUPS, GROUP_TITLES} from '../doctor/types.js'

/** Shared by the Ink checklist and the plain lines, so both read the same. */
export const STATUS_SYMBOL: Readonly<Record<CheckStatus, string>> = {ok: '✔', warn: '▲', fail: '✖', skip: '○'}
export const STATUS_COLOR: Readonly<Record<CheckStatus, string>> = {ok: 'green', warn: 'yellow', fail: 'red', skip: 'gray'}
export const VERDICT_COLOR: Readonly<Record<Verdict, string>> = {ok: 'green', warn: 'yellow', fail: 'red'}

export const ID_COLUMN_WIDTH = 14

export interface CheckGroupView {
  readonly group: CheckGroup
  readonly title: string
  readonly checks: readonly DoctorCheck[]
}

/** Checks in display order, grouped; empty groups dropped. */
export function groupChecks(report: DoctorReport): CheckGroupView[] {
  return CHECK_GROUPS.map((group) => ({group, title: GROUP_TITLES[group], checks: report.checks.filter((c) => c.group === group)})).filter(
    (g) => g.checks.length > 0,
  )
}

export function countsText(report: DoctorReport): string {
  const c = report.counts
  return `${c.ok} ok, ${c.warn} warn, ${c.fail} fail, ${c.skip} skip`
}

export function sourceText(report: DoctorReport): string {
  return report.captured ? `captured tree ${report.root}` : 'this machine'
}

/**
 * The report's title line within `width` columns: a captured tree's path keeps its tail (the part
 * that names the capture) behind a leading '…' when the whole path does not fit.
 */
export function titleText(report: DoctorReport, width: number): string {
  const title = `hpd doctor: ${sourceText(report)}`
  if (title.length <= width || !report.captured) return title
  const prefix = 'hpd doctor: captured tree …'
  const room = Math.max(8, width - prefix.length)
  return `${prefix}${report.root.slice(-room)}`
}

/** Gutter before a check's summary: status symbol (2) + id column + one space. */
export const SUMMARY_INDENT = 2 + ID_COLUMN_WIDTH + 1

/**
 * Greedy word wrap. Ink's own wrap keeps the space it breaks at as a leading blank on the next
 * line; wrapping here first gives clean columns. Words longer than the width are cut.
 */
export function wrapWords(text: string, width: number): string[] {
  const max = Math.max(8, width)
  const lines: string[] = []
  let line = ''
  for (const word of text.split(/\s+/u).filter(Boolean)) {
    for (let w = word; w.length > 0; w = w.slice(max)) {
      const piece = w.slice(0, max)
      if (line === '') line = piece
      else if (line.length + 1 + piece.length <= max) line = `${line} ${piece}`
      else {
        lines.push(line)
        line = piece
      }
    }
  }
  if (line !== '' || lines.length === 0) lines.push(line)
  return lines
}
