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

/** Presents a finished report on stdout: the Ink checklist on a terminal, plain lines otherwise. */
export async function renderDoctorReport(report: DoctorReport, target: RenderTarget = {stdout: process.stdout, env: process.env}): Promise<void> {
  if (!shouldUseInk(target.stdout.isTTY, target.env)) {
    target.stdout.write(formatDoctorPlain(report))
    return
  }
  // Ink and React cost ~0.5 s to import on a small machine: only a terminal pays it.
  const [{render}, {createElement}, {DoctorChecklist}] = await Promise.all([import('ink'), import('react'), import('./DoctorChecklist.js')])
  const instance = render(createElement(DoctorChecklist, {report}), {stdout: target.stdout, patchConsole: false, exitOnCtrlC: false})
  instance.unmount()
  await instance.waitUntilExit()
}
