import {CHECK_GROUP_OF, CheckId, CheckStatus, DoctorCheck} from '../types.js'

/** Builds a check result; `hint` is dropped when the status is ok (an ok check needs no fix). */
export function result(
  id: CheckId,
  title: string,
  status: CheckStatus,
  summary: string,
  data: Record<string, unknown>,
  hint?: string,
): DoctorCheck {
  return {id, group: CHECK_GROUP_OF[id], title, status, summary, ...(status !== 'ok' && hint ? {hint} : {}), data}
}
