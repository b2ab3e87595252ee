import {EnvironmentError} from '../errors.js'
import {DoctorReport} from './types.js'

export {runDoctor, judge, verdictOf} from './run-doctor.js'
export {collectFacts} from './collect.js'
export type {CollectOptions, MachineFacts} from './collect.js'
export * from './types.js'

/**
 * A failed verdict is an environment error (exit 4) whose details carry the whole report, so
 * `--json` consumers get `ok:false`, `error.code = HPD_DOCTOR_FAILED` and every check in
 * `error.details.checks`.
 */
export function doctorFailedError(report: DoctorReport): EnvironmentError {
  const failed = report.checks.filter((c) => c.status === 'fail')
  const first = failed[0]
  return new EnvironmentError('HPD_DOCTOR_FAILED', `${failed.length} doctor check${failed.length === 1 ? '' : 's'} failed: ${failed.map((c) => c.id).join(', ')}`, {
    hint: failed.length === 1 && first?.hint ? first.hint : 'Fix the failed checks listed above (each has its own hint), then run `hpd doctor` again.',
    details: {...report},
  })
}
