import {MachineFacts} from '../collect.js'
import {DoctorCheck} from '../types.js'
import {result} from './result.js'

const TITLE = 'hpd native addon'

export function checkHpdNative(facts: MachineFacts): DoctorCheck {
  const n = facts.native
  if (n.state === 'not-probed') return result('hpd-native', TITLE, 'skip', n.reason, {loaded: null})
  if (n.state === 'failed') {
    return result('hpd-native', TITLE, 'fail', `${n.code}: ${n.message}`, {loaded: false, path: n.path, code: n.code},
      n.hint ?? 'Rebuild it with `npm run build:native`.')
  }
  const surfaces = n.surfaces.length > 0 ? `surfaces: ${n.surfaces.join(', ')}` : 'no surfaces registered yet'
  return result('hpd-native', TITLE, 'ok', `loads (${surfaces})`, {loaded: true, path: n.path, surfaces: n.surfaces})
}
