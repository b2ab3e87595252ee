import type {DoctorReport} from '../doctor/types.js'
import {formatDoctorPlain} from './doctor-plain.js'

export interface RenderTarget {
  readonly stdout: NodeJS.WriteStream
  readonly env: NodeJS.ProcessEnv
}

/** Ink only on an interactive terminal: not when piped, not in CI, not on a dumb terminal. (--json never gets here.) */
export function shouldUseInk(isTTY: boolean | undefined, env: NodeJS.ProcessEnv): boolean {
  const ci = env.CI !== undefined && env.CI !== '' && env.CI !== '0' && env.CI.toLowerCase() !== 'false'
  return isTTY === true && !ci && env.TERM !== 'dumb'
}

/**
 * Chooses the presentation now and returns the function that presents a finished report on
 * stdout: the Ink checklist on a terminal, plain lines otherwise. Called before the probes run,
 * so Ink's import (~0.5 s on a small machine) overlaps with them instead of following them.
 */
export function prepareDoctorRenderer(target: RenderTarget = {stdout: process.stdout, env: process.env}): (report: DoctorReport) => Promise<void> {
  if (!shouldUseInk(target.stdout.isTTY, target.env)) {
    return async (report) => {
      target.stdout.write(formatDoctorPlain(report))
    }
  }
  // React and its reconciler load their (much larger) development builds unless told otherwise.
  process.env.NODE_ENV ??= 'production'
  const modules = Promise.all([import('ink'), import('react'), import('./DoctorChecklist.js')])
  modules.catch(() => {}) // surfaced when awaited below
  return async (report) => {
    const [{render, Static}, {createElement}, {DoctorChecklist}] = await modules
    // The report is finished, so it goes out once through <Static>: Ink then does not lay it out
    // and tokenize it again for the final frame at unmount (~100 ms less on a small machine).
    const view = createElement(Static<DoctorReport>, {items: [report], children: (r: DoctorReport) => createElement(DoctorChecklist, {key: 'report', report: r})})
    const instance = render(view, {stdout: target.stdout, patchConsole: false, exitOnCtrlC: false})
    instance.unmount()
    await instance.waitUntilExit()
  }
}

/** Presents a finished report (see prepareDoctorRenderer). */
export async function renderDoctorReport(report: DoctorReport, target?: RenderTarget): Promise<void> {
  await prepareDoctorRenderer(target)(report)
}
